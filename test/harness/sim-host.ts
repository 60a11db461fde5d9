import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, openSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { exec, mustExec, waitFor, type ExecResult } from "./exec.js";
import { SLOTS, releaseSlot, takeSlot } from "./net-slots.js";
import { FERRY_AGENT_BIN } from "./paths.js";

/**
 * Every address a simulated host can reach the controller at: a controller
 * certificate naming them all serves any host, whichever slot it gets.
 */
export function everyGatewayAddress(): string[] {
  return Array.from({ length: SLOTS }, (_, index) => `10.231.${index + 1}.1`);
}

/** The exit status by which the agent asks its service manager for a restart (packages/agent/src/self-restart.ts). */
const AGENT_RESTART_STATUS = 75;

export interface AgentSettings {
  controllerPort: number;
  token: string;
  trustedPublicKeys: string[];
  /** wss:// and https:// to the controller, trusting this CA; plaintext (explicitly allowed) without it. */
  caFile?: string;
  extra?: Record<string, unknown>;
}

/**
 * A simulated NixOS host: its own network namespace (reached from the root
 * namespace over a veth pair) and its own /nix and /run, bind-mounted inside a
 * private mount namespace for every command it runs. /run lives in a directory
 * so it survives between commands; clearing it is a reboot.
 */
export class SimHost {
  readonly netns: string;
  readonly gateway: string;
  readonly address: string;
  readonly stateDir: string;
  private agent: ChildProcess | undefined;

  private constructor(
    readonly name: string,
    readonly dir: string,
    private readonly slot: number,
  ) {
    this.netns = `ferry-h${slot}`;
    this.gateway = everyGatewayAddress()[slot - 1] as string;
    this.address = `10.231.${slot}.2`;
    this.stateDir = join(dir, "agent-state");
  }

  static async create(name: string, baseDir: string): Promise<SimHost> {
    const slot = takeSlot();
    const host = new SimHost(name, join(baseDir, name), slot);
    for (const sub of ["nix", "run", "home", "cache", "agent-state"]) mkdirSync(join(host.dir, sub), { recursive: true });
    await exec(["ip", "netns", "delete", host.netns]);
    await exec(["ip", "link", "delete", `fyh${slot}a`]);
    await mustExec(["ip", "netns", "add", host.netns]);
    await mustExec(["ip", "link", "add", `fyh${slot}a`, "type", "veth", "peer", "name", `fyh${slot}b`]);
    await mustExec(["ip", "link", "set", `fyh${slot}b`, "netns", host.netns]);
    await mustExec(["ip", "addr", "add", `${host.gateway}/30`, "dev", `fyh${slot}a`]);
    await mustExec(["ip", "link", "set", `fyh${slot}a`, "up"]);
    await host.ip(["addr", "add", `${host.address}/30`, "dev", `fyh${slot}b`]);
    await host.ip(["link", "set", `fyh${slot}b`, "up"]);
    await host.ip(["link", "set", "lo", "up"]);
    return host;
  }

  private ip(args: string[]): Promise<string> {
    return mustExec(["ip", "netns", "exec", this.netns, "ip", ...args]);
  }

  /** Cuts or restores the host's only link to the controller. */
  async setLink(up: boolean): Promise<void> {
    await this.ip(["link", "set", `fyh${this.slot}b`, up ? "up" : "down"]);
    if (up) await this.ip(["route", "replace", `${this.gateway}/30`, "dev", `fyh${this.slot}b`]).catch(() => undefined);
  }

  private argv(command: readonly string[]): string[] {
    return [
      "ip",
      "netns",
      "exec",
      this.netns,
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-c",
      'mount --bind "$0/nix" /nix && mount --bind "$0/run" /run && exec "$@"',
      this.dir,
      ...command,
    ];
  }

  private env(): NodeJS.ProcessEnv {
    return { ...process.env, HOME: join(this.dir, "home"), XDG_CACHE_HOME: join(this.dir, "cache"), FERRY_LOG_LEVEL: "debug" };
  }

  /** Runs a command inside the host. */
  run(command: readonly string[], timeoutMs = 60_000): Promise<ExecResult> {
    return exec(this.argv(command), { env: this.env(), timeoutMs });
  }

  get agentLog(): string {
    return join(this.dir, "agent.log");
  }

  writeAgentConfig(settings: AgentSettings): string {
    const tokenFile = join(this.dir, "token");
    writeFileSync(tokenFile, `${settings.token}\n`, { mode: 0o600 });
    const secure = settings.caFile !== undefined;
    const config = {
      controllerUrl: `${secure ? "wss" : "ws"}://${this.gateway}:${settings.controllerPort}/agent`,
      hostName: this.name,
      tokenFile,
      substituters: [`${secure ? "https" : "http"}://${this.gateway}:${settings.controllerPort}/cache`],
      ...(secure ? { caFile: settings.caFile } : { allowInsecureTransport: true }),
      trustedPublicKeys: settings.trustedPublicKeys,
      stateDir: this.stateDir,
      heartbeatInterval: 1,
      reconnectMaxDelay: 2,
      logLevel: "debug",
      ...settings.extra,
    };
    const file = join(this.dir, "agent.json");
    writeFileSync(file, JSON.stringify(config, null, 2));
    return file;
  }

  /**
   * Starts the real `ferry-agent` inside the host; its log is appended to
   * agent.log. Like systemd with the NixOS module's unit, it runs the
   * ExecStart of the running system's ferry-agent.service when that system
   * has one (fixture systems built with an agent unit), and starts the agent
   * again when it exits with the restart status 75 (RestartForceExitStatus),
   * then without the test's fault injection.
   */
  startAgent(env: Record<string, string> = {}): void {
    if (this.agent) throw new Error(`agent of ${this.name} already running`);
    const log = openSync(this.agentLog, "a");
    const [program, ...args] = this.argv(this.agentCommand());
    const child = spawn(program as string, args, {
      env: { ...this.env(), ...env },
      stdio: ["ignore", log, log],
    });
    child.on("exit", (code) => {
      if (this.agent !== child) return;
      this.agent = undefined;
      if (code === AGENT_RESTART_STATUS) this.startAgent();
    });
    this.agent = child;
  }

  /** The agent's command line: the running system's unit's ExecStart, or the checkout's ferry-agent. */
  agentCommand(): string[] {
    const system = this.currentSystem();
    if (system) {
      try {
        const unit = readFileSync(join(this.dir, system, "etc/systemd/system/ferry-agent.service"), "utf8");
        const execStart = /^ExecStart=(.+)$/m.exec(unit)?.[1];
        if (execStart) return execStart.trim().split(/\s+/);
      } catch {
        // No agent unit in this system.
      }
    }
    return [FERRY_AGENT_BIN, "--config", join(this.dir, "agent.json")];
  }

  async stopAgent(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const child = this.agent;
    if (!child) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill(signal);
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000).unref())]);
    this.agent = undefined;
  }

  get agentRunning(): boolean {
    return this.agent !== undefined;
  }

  agentLogText(): string {
    try {
      return readFileSync(this.agentLog, "utf8");
    } catch {
      return "";
    }
  }

  /** Waits for a structured agent log event matching `predicate`. */
  async waitForLog(what: string, predicate: (event: Record<string, unknown>) => boolean, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    return waitFor(
      what,
      () => {
        for (const line of this.agentLogText().split("\n")) {
          if (!line.startsWith("{")) continue;
          const event = JSON.parse(line) as Record<string, unknown>;
          if (predicate(event)) return event;
        }
        return undefined;
      },
      timeoutMs,
    );
  }

  /**
   * A power cut and boot: every process of the host dies, /run is emptied,
   * and the boot default (the system profile) becomes the running system, as
   * NixOS's stage 2 would make it.
   */
  async reboot(): Promise<void> {
    await this.stopAgent("SIGKILL");
    await this.killAll();
    rmSync(join(this.dir, "run"), { recursive: true, force: true });
    mkdirSync(join(this.dir, "run"));
    const booted = this.profileSystem();
    if (booted) symlinkSync(booted, join(this.dir, "run", "current-system"));
    await this.setLink(true);
  }

  /** Kills every process left in the host's network namespace (orphaned switches, hung fixtures). */
  async killAll(): Promise<void> {
    const pids = (await exec(["ip", "netns", "pids", this.netns])).stdout.split("\n").filter(Boolean);
    for (const pid of pids) {
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {
        // gone already
      }
    }
  }

  /** The agent's persisted state file. */
  agentState(): {
    appliedSerial: number;
    transaction: { phase: string; switchProcess?: { pid: number } } | null;
    lastResult: { errorCode: string; phase: number } | null;
    agentRestart?: { from: string; to: string; ineffective?: boolean } | null;
  } {
    return JSON.parse(readFileSync(join(this.stateDir, "state.json"), "utf8")) as ReturnType<SimHost["agentState"]>;
  }

  /** The host's /run/current-system, read from outside. */
  currentSystem(): string {
    try {
      return readlinkSync(join(this.dir, "run", "current-system"));
    } catch {
      return "";
    }
  }

  /** Where the host's system profile points, resolved through its generation link. */
  profileSystem(): string {
    try {
      const generation = readlinkSync(join(this.dir, "nix/var/nix/profiles/system"));
      return readlinkSync(join(this.dir, "nix/var/nix/profiles", generation));
    } catch {
      return "";
    }
  }

  /** Every switch-to-configuration call the fixture recorded: [action, system]. */
  switchCalls(): [string, string][] {
    try {
      return readFileSync(join(this.dir, "nix/var/fixture/calls.log"), "utf8")
        .split("\n")
        .filter(Boolean)
        .map((line) => {
          const [, action, system] = line.split(" ");
          return [action as string, system as string];
        });
    } catch {
      return [];
    }
  }

  async destroy(): Promise<void> {
    await this.stopAgent("SIGKILL");
    await this.killAll();
    await exec(["ip", "netns", "delete", this.netns]);
    await exec(["ip", "link", "delete", `fyh${this.slot}a`]);
    releaseSlot(this.slot);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
