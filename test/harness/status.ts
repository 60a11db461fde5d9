import type { Fleet } from "./fleet.js";
import { waitFor } from "./exec.js";

export interface HostJson {
  name: string;
  online: boolean;
  phase: string;
  currentSystem: string;
  desiredSystem: string;
  desiredSerial: number;
  appliedSerial: number;
  lastError: { code: string; message: string; output: string } | null;
  agentVersion: string;
}

export async function hostStatus(fleet: Fleet, name: string): Promise<HostJson> {
  return (await fleet.mustCli(["status", name, "--json"])).json<{ hosts: HostJson[] }>().hosts[0] as HostJson;
}

export async function allOnline(fleet: Fleet, timeoutMs = 30_000): Promise<void> {
  await waitFor(
    "every agent online",
    async () => {
      const hosts = (await fleet.mustCli(["status", "--json"])).json<{ hosts: HostJson[] }>().hosts;
      return hosts.every((host) => host.online) || undefined;
    },
    timeoutMs,
  );
}

const FINAL = new Set(["active", "failed", "rolled-back", "boot-pending"]);

/** Waits until the host reported a final phase for its newest desired system. */
export async function settled(fleet: Fleet, name: string, timeoutMs = 60_000): Promise<HostJson> {
  return waitFor(
    `${name} settled`,
    async () => {
      const host = await hostStatus(fleet, name);
      return host.appliedSerial === host.desiredSerial && FINAL.has(host.phase) ? host : undefined;
    },
    timeoutMs,
    250,
  );
}
