// The idle footprint of one real agent (`ferry-agent`, as the NixOS module
// runs it), linked to the bench controller, next to a minimal ws+protobuf
// client (minimal-client.mjs) holding the same link, run once as plain Node
// and once with ferry-agent's Node flags: VmRSS and VmHWM after a time idle.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { FERRY_AGENT_BIN } from "../../harness/paths.js";
import { readCpuSeconds, readMemory, type Memory } from "./measure.js";

const MINIMAL_CLIENT = fileURLToPath(new URL("./minimal-client.mjs", import.meta.url));

/** The Node flags on ferry-agent's #! line (`#!/usr/bin/env -S node FLAGS`), for the baseline run under the same flags. */
function agentNodeFlags(): string[] {
  const shebang = readFileSync(FERRY_AGENT_BIN, "utf8").split("\n")[0] ?? "";
  return shebang.split(/\s+/).filter((word) => word.startsWith("--"));
}

export interface IdleFootprint {
  agent: Memory & { cpuPercent: number; alive: boolean };
  /** The end of the processes' log when one of them exited. */
  failure?: string;
  baseline: Memory & { alive: boolean };
  /** The same client under ferry-agent's Node flags. */
  flaggedBaseline: Memory & { alive: boolean; flags: string[] };
  idleSeconds: number;
}

export interface IdleAgents {
  /** Waits until both ran `idleSeconds`, then reads their memory. */
  measure(): Promise<IdleFootprint>;
  stop(): void;
}

export function startIdleAgents(options: {
  dir: string;
  agentUrl: string;
  agent: { name: string; token: string };
  baseline: { name: string; token: string };
  flaggedBaseline: { name: string; token: string };
  heartbeatSeconds: number;
  idleSeconds: number;
}): IdleAgents {
  const { dir } = options;
  mkdirSync(dir, { recursive: true });
  const tokenFile = (name: string, token: string): string => {
    const file = join(dir, `${name}.token`);
    writeFileSync(file, `${token}\n`, { mode: 0o600 });
    return file;
  };
  const config = join(dir, "agent.json");
  writeFileSync(
    config,
    JSON.stringify({
      controllerUrl: options.agentUrl,
      hostName: options.agent.name,
      tokenFile: tokenFile(options.agent.name, options.agent.token),
      substituters: [options.agentUrl.replace(/^ws/, "http").replace(/\/agent$/, "/cache")],
      // Never used: this agent is given nothing to fetch.
      trustedPublicKeys: [`bench-1:${Buffer.alloc(32).toString("base64")}`],
      stateDir: join(dir, "state"),
      profile: join(dir, "profiles", "system"),
      currentSystemLink: join(dir, "current-system"),
      heartbeatInterval: options.heartbeatSeconds,
      logLevel: "info",
    }),
  );
  const logFile = join(dir, "processes.log");
  const log = openSync(logFile, "a");
  const flags = agentNodeFlags();
  const client = (nodeFlags: string[], host: { name: string; token: string }): ChildProcess =>
    spawn(
      process.execPath,
      [...nodeFlags, MINIMAL_CLIENT, options.agentUrl, host.name, tokenFile(host.name, host.token), String(options.heartbeatSeconds * 1000)],
      { stdio: ["ignore", log, log] },
    );
  const children: ChildProcess[] = [
    spawn(FERRY_AGENT_BIN, ["--config", config], { stdio: ["ignore", log, log] }),
    client([], options.baseline),
    client(flags, options.flaggedBaseline),
  ];
  closeSync(log);
  const startedAt = Date.now();
  const alive = (child: ChildProcess): boolean => child.exitCode === null && child.signalCode === null;
  return {
    async measure() {
      const [agent, baseline, flaggedBaseline] = children as [ChildProcess, ChildProcess, ChildProcess];
      // CPU over the second half of the idle time, once start-up is over.
      const halfway = startedAt + (options.idleSeconds * 1000) / 2;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, halfway - Date.now())));
      const cpuBefore = readCpuSeconds(agent.pid as number);
      const measuredFrom = Date.now();
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, startedAt + options.idleSeconds * 1000 - Date.now())));
      const cpuPercent = ((readCpuSeconds(agent.pid as number) - cpuBefore) / ((Date.now() - measuredFrom) / 1000)) * 100;
      const footprint: IdleFootprint = {
        agent: { ...readMemory(agent.pid as number), cpuPercent, alive: alive(agent) },
        baseline: { ...readMemory(baseline.pid as number), alive: alive(baseline) },
        flaggedBaseline: { ...readMemory(flaggedBaseline.pid as number), alive: alive(flaggedBaseline), flags },
        idleSeconds: (Date.now() - startedAt) / 1000,
      };
      if (!footprint.agent.alive || !footprint.baseline.alive || !footprint.flaggedBaseline.alive)
        footprint.failure = readFileSync(logFile, "utf8").slice(-500);
      return footprint;
    },
    stop() {
      for (const child of children) if (alive(child)) child.kill("SIGKILL");
    },
  };
}
