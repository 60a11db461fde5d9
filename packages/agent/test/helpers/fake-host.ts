// A host for agent unit tests: temp profile and current-system symlinks, and a
// command runner that answers like Nix and NixOS (nix-env --set moves the
// profile, switch/test move current-system) unless a test scripts otherwise.
import { mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { Nix, silentLogger, type CommandResult, type CommandRunner, type CommandSpec, type Logger } from "@ferry/core";
import type { HostPhase } from "@ferry/protocol";
import { parseAgentConfig, type AgentConfig } from "../../src/config.js";
import { StateFile } from "../../src/state-file.js";
import { ActivationTransaction, type TransactionDeps } from "../../src/transaction.js";
import { makeKey, pathInfoJson } from "../signed-paths.js";

/** The key every fake host trusts, and signs its fake closures with. */
export const HOST_KEY = makeKey("ferry-1");
export const PREV = "/nix/store/1zy01hjzwvvia6h9dq5xar88v77fgh9x-nixos-system-web1-old";
export const NEXT = "/nix/store/pz5wv3mkbf4bwihvsz8yqydfwb9bfhy5-nixos-system-web1-new";
export const SWITCH = "/bin/switch-to-configuration";

function setLink(link: string, target: string): void {
  mkdirSync(dirname(link), { recursive: true });
  try {
    unlinkSync(link);
  } catch {
    // No link yet.
  }
  symlinkSync(target, link);
}

export type Script = (argv: readonly string[]) => Partial<CommandResult> | undefined | Promise<Partial<CommandResult> | undefined>;

export class FakeRunner implements CommandRunner {
  readonly calls: string[][] = [];
  script: Script = () => undefined;

  constructor(
    private readonly profile: string,
    private readonly currentLink: string,
  ) {}

  async run(spec: CommandSpec): Promise<CommandResult> {
    const argv = [...spec.argv];
    this.calls.push(argv);
    const [program, ...args] = argv;
    const scripted = await this.script(argv);
    // The agent checks every path's signature itself: by default the closure is signed by the host's key.
    const defaults: Partial<CommandResult> =
      program === "nix" && args.includes("--sigs") ? { stdout: JSON.stringify([pathInfoJson(args.at(-1) as string, HOST_KEY)]) } : {};
    const result: CommandResult = { argv, exitCode: 0, signal: null, stdout: "", stderr: "", timedOut: false, ...defaults, ...scripted };
    if (program === "nix-env" && result.exitCode === 0 && args[2] === "--set") {
      const dir = dirname(this.profile);
      mkdirSync(dir, { recursive: true });
      const generation = `${basename(this.profile)}-${readdirSync(dir).length + 1}-link`;
      symlinkSync(args[3] as string, join(dir, generation));
      setLink(this.profile, generation);
    }
    if (program?.endsWith(SWITCH) && (args[0] === "switch" || args[0] === "test") && !result.timedOut)
      setLink(this.currentLink, program.slice(0, -SWITCH.length));
    return result;
  }

  /** The switch-to-configuration calls, as [system, action]. */
  get switches(): [string, string][] {
    return this.calls
      .filter(([program]) => program?.endsWith(SWITCH))
      .map(([program, action]) => [(program as string).slice(0, -SWITCH.length), action as string]);
  }
}

export interface FakeHost {
  dir: string;
  stateDir: string;
  currentLink: string;
  profile: string;
  runner: FakeRunner;
  clock: { now: number };
  config: AgentConfig;
  log: Logger;
  current(): string;
  /** A transaction over this host, as a (re)started agent would build it. */
  transaction(overrides?: Partial<TransactionDeps>): ActivationTransaction;
  cleanup(): void;
}

export function fakeHost(options: { previous?: string; stateDir?: string; config?: Record<string, unknown> } = {}): FakeHost {
  const dir = mkdtempSync(join(tmpdir(), "ferry-agent-test-"));
  const stateDir = options.stateDir ?? join(dir, "state");
  mkdirSync(stateDir, { recursive: true });
  const profile = join(dir, "profiles", "system");
  const currentLink = join(dir, "run", "current-system");
  const runner = new FakeRunner(profile, currentLink);
  if (options.previous) {
    setLink(currentLink, options.previous);
    void runner.run({ argv: ["nix-env", "-p", profile, "--set", options.previous] });
    runner.calls.length = 0;
  }
  // The agent reads its token for the cache's netrc before a fetch.
  writeFileSync(join(dir, "token"), "fake-host-token\n", { mode: 0o600 });
  const config = parseAgentConfig({
    controllerUrl: "ws://127.0.0.1:1/agent",
    hostName: "web1",
    tokenFile: join(dir, "token"),
    substituters: ["http://127.0.0.1:1/cache"],
    trustedPublicKeys: [HOST_KEY.publicKey],
    stateDir,
    profile,
    currentSystemLink: currentLink,
    switchLockFile: join(dir, "switch.lock"),
    diskReserveMiB: 0,
    ...options.config,
  });
  const clock = { now: 1_700_000_000_000 };
  const log = silentLogger();
  return {
    dir,
    stateDir,
    currentLink,
    profile,
    runner,
    clock,
    config,
    log,
    current: () => {
      try {
        return readlinkSync(currentLink);
      } catch {
        return "";
      }
    },
    transaction: (overrides = {}) =>
      new ActivationTransaction({
        config,
        nix: new Nix(runner),
        runner,
        state: new StateFile(stateDir, log),
        log,
        now: () => clock.now,
        // Time moves only when the agent sleeps: deadlines pass instantly and deterministically.
        sleep: async (ms) => {
          clock.now += Math.max(ms, 1);
        },
        progress: (_serial: number, _phase: HostPhase) => undefined,
        heartbeat: undefined,
        ...overrides,
      }),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export const desired = (serial: number, storePath = NEXT, strategy: "switch" | "trial" | "boot" | "test" = "switch") => ({
  serial,
  storePath,
  deploymentId: `d${serial}`,
  strategy,
});

/** A logger whose JSON events a test can read back. */
export function capturingLogger(): { log: Logger; events: Record<string, unknown>[] } {
  const events: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n")) if (line.startsWith("{")) events.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: "debug" }, sink), events };
}
