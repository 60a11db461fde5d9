import { FerryError, assertHostName, assertStorePath } from "@ferry/core";
import { ActivationMode, HostPhase, type HostStatus, type WatchHostsResponse } from "@ferry/protocol";
import { parseVerb, positiveSeconds } from "../args.js";
import { VERBS } from "../spec/index.js";
import { status, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import { withConnection, toCliError, type OperatorConnection } from "../client.js";
import { createOutput, hostStatusJson, phaseName, type Output } from "../output.js";

const MODES: Record<string, ActivationMode> = {
  switch: ActivationMode.ACTIVATION_MODE_SWITCH,
  boot: ActivationMode.ACTIVATION_MODE_BOOT,
  test: ActivationMode.ACTIVATION_MODE_TEST,
};

export function parseTarget(argument: string): { hostName: string; storePath: string } {
  const eq = argument.indexOf("=");
  if (eq <= 0) throw new FerryError("E_BAD_ARGUMENT", `expected HOST=STOREPATH, got ${JSON.stringify(argument)}`);
  return { hostName: assertHostName(argument.slice(0, eq)), storePath: assertStorePath(argument.slice(eq + 1)) };
}

export async function deployCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS.deploy, args);
  const targets = positionals.map(parseTarget);
  const mode = MODES[values.mode];
  if (mode === undefined) throw new FerryError("E_BAD_ARGUMENT", `--mode must be switch, boot or test, got ${JSON.stringify(values.mode)}`);
  const timeoutSeconds = positiveSeconds(values.timeout, "--timeout");
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    const response = await connection.call(connection.client.deploy, { targets, mode });
    out.note(`deployment ${response.deploymentId}: ${response.hosts.length} host(s)`);
    if (!values.wait) {
      out.result({ deploymentId: response.deploymentId, hosts: response.hosts.map(hostStatusJson) }, () => `recorded deployment ${response.deploymentId}\n`);
      return 0;
    }
    const serials = new Map(response.hosts.map((host) => [host.name, host.desiredSerial]));
    const final = await waitForHosts(connection, serials, timeoutSeconds * 1000, out);
    const failed = [...final.values()].filter((host) => !SUCCESS_PHASES.has(host.phase) || host.desiredSerial !== serials.get(host.name));
    out.result({ deploymentId: response.deploymentId, success: failed.length === 0, hosts: [...final.values()].map(hostStatusJson) }, () =>
      [...final.values()]
        .map((host) => `${host.name}: ${phaseName(host.phase)}${host.lastErrorCode ? ` (${host.lastErrorCode}: ${host.lastErrorMessage})` : ""}`)
        .join("\n"),
    );
    if (failed.length > 0) {
      const first = failed[0] as HostStatus;
      const reason =
        first.desiredSerial !== serials.get(first.name) ? "a newer deployment superseded this one" : `${first.lastErrorCode}: ${first.lastErrorMessage}`;
      throw new FerryError("E_DEPLOY_FAILED", `${failed.length} host(s) did not activate; ${first.name}: ${reason}`, { output: first.lastErrorOutput });
    }
    return 0;
  });
}

const SUCCESS_PHASES = new Set([HostPhase.HOST_PHASE_ACTIVE, HostPhase.HOST_PHASE_BOOT_PENDING]);
const FINAL_PHASES = new Set([...SUCCESS_PHASES, HostPhase.HOST_PHASE_FAILED, HostPhase.HOST_PHASE_ROLLED_BACK]);

function isSettled(host: HostStatus, serial: number): boolean {
  if (host.desiredSerial !== serial) return true;
  return host.appliedSerial >= serial && FINAL_PHASES.has(host.phase);
}

/**
 * Follows the hosts' status stream until each one settles on its serial, or
 * the timeout. A controller restart breaks the stream; it is opened again, so
 * waiting survives the controller going away for a while.
 */
function waitForHosts(connection: OperatorConnection, serials: Map<string, number>, timeoutMs: number, out: Output): Promise<Map<string, HostStatus>> {
  return new Promise((resolve, reject) => {
    const latest = new Map<string, HostStatus>();
    const lastShown = new Map<string, string>();
    let stream: ClientReadableStream<WatchHostsResponse> | undefined;
    let finished = false;
    const finish = (error?: FerryError) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      stream?.cancel();
      if (error) reject(error);
      else resolve(latest);
    };
    const timer = setTimeout(() => {
      const waiting = [...serials.keys()].filter((name) => !latest.has(name) || !isSettled(latest.get(name) as HostStatus, serials.get(name) as number));
      const detail = waiting.map(
        (name) => `${name} (${latest.get(name) ? phaseName((latest.get(name) as HostStatus).phase) : "unknown"}${latest.get(name)?.online ? "" : ", offline"})`,
      );
      finish(new FerryError("E_DEPLOY_TIMEOUT", `timed out after ${timeoutMs / 1000}s waiting for ${detail.join(", ")}`));
    }, timeoutMs);
    const watch = (): void => {
      const current = connection.client.watchHosts({ names: [...serials.keys()] }, connection.metadata());
      stream = current;
      current.on("data", ({ host }: WatchHostsResponse) => {
        if (!host) return;
        latest.set(host.name, host);
        const shown = `${phaseName(host.phase)}${host.online ? "" : " (offline)"}`;
        if (lastShown.get(host.name) !== shown) {
          lastShown.set(host.name, shown);
          out.note(`  ${host.name}: ${shown}`);
        }
        if ([...serials].every(([name, serial]) => latest.has(name) && isSettled(latest.get(name) as HostStatus, serial))) finish();
      });
      current.on("error", (error: ServiceError) => {
        if (finished) return;
        const failure = toCliError(error);
        // A controller that shuts down cancels open streams: that, too, means "wait and reconnect".
        if (failure.code !== "E_CONTROLLER_UNREACHABLE" && error.code !== status.CANCELLED) return finish(failure);
        out.note("  controller unreachable; still waiting");
        setTimeout(() => {
          if (!finished) watch();
        }, 1000).unref();
      });
    };
    watch();
  });
}
