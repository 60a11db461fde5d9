import * as promClient from "prom-client";
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { Nix, silentLogger, type CommandResult, type CommandRunner, type CommandSpec } from "@ferry/core";
import { HostPhase, type ActivationResult } from "@ferry/protocol";
import { parseAgentConfig } from "../src/config.js";
import { StateFile } from "../src/state-file.js";
import { AgentMetricsFile } from "../src/metrics-textfile.js";
import { ActivationTransaction } from "../src/transaction.js";
import { makeKey, pathInfoJson } from "./signed-paths.js";

// The activation transaction (packages/agent/src/transaction.ts) against a
// fake Nix/NixOS: temp profile and current-system symlinks, scripted results.
const PREV = "/nix/store/1zy01hjzwvvia6h9dq5xar88v77fgh9x-nixos-system-web1-old";
const NEXT = "/nix/store/pz5wv3mkbf4bwihvsz8yqydfwb9bfhy5-nixos-system-web1-new";
const SWITCH = "/bin/switch-to-configuration";
/** The key the fake host trusts; the fake store holds NEXT signed by it (see FakeSystem). */
const HOST_KEY = makeKey("ferry-1");

const root = mkdtempSync(join(tmpdir(), "ferry-activation-"));
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;

function setLink(link: string, target: string): void {
  mkdirSync(dirname(link), { recursive: true });
  try {
    unlinkSync(link);
  } catch {
    // No link yet.
  }
  symlinkSync(target, link);
}

/** Like nix-env --set: a new generation link, and the profile pointed at it by relative name. */
function setProfileLink(profile: string, target: string): void {
  mkdirSync(dirname(profile), { recursive: true });
  const generations = readdirSync(dirname(profile)).filter((name) => name.startsWith(`${basename(profile)}-`)).length;
  const generation = `${basename(profile)}-${generations + 1}-link`;
  symlinkSync(target, join(dirname(profile), generation));
  setLink(profile, generation);
}

/** The store path a profile selects, through its generation link. */
function profileTarget(profile: string): string {
  return readlinkSync(join(dirname(profile), readlinkSync(profile)));
}

type Script = (argv: readonly string[], fake: FakeSystem) => Partial<CommandResult> | undefined;

/**
 * Answers like Nix and NixOS: nix-env --set moves the profile link, and a
 * switch-to-configuration switch/test points current-system at its system
 * (NixOS does that early in activation, so even a failing switch moves it).
 */
class FakeSystem implements CommandRunner {
  readonly calls: string[][] = [];
  /** The state file as it was on disk when each command started. */
  readonly stateAtCall: ({ transaction: { phase: string } | null } | null)[] = [];
  script: Script = () => undefined;

  constructor(readonly f: { profile: string; currentLink: string; stateFile: string }) {}

  async run(spec: CommandSpec): Promise<CommandResult> {
    const argv = [...spec.argv];
    this.calls.push(argv);
    let onDisk = null;
    try {
      onDisk = JSON.parse(readFileSync(this.f.stateFile, "utf8"));
    } catch {
      // Not written yet.
    }
    this.stateAtCall.push(onDisk);
    const [program, ...args] = argv;
    // Sizes for the disk-space check: tiny; and nothing of the closure is in the store yet.
    const defaults: Partial<CommandResult> =
      program === "nix" && args.includes("--sigs")
        ? { stdout: JSON.stringify([pathInfoJson(args.at(-1) as string, HOST_KEY)]) }
        : program === "nix" && args.includes("path-info")
          ? { stdout: JSON.stringify([{ path: NEXT, narSize: 4096 }]) }
          : program === "nix-store" && args.includes("--print-invalid")
            ? { stdout: `${NEXT}\n` }
            : {};
    const result: CommandResult = { argv, exitCode: 0, signal: null, stdout: "", stderr: "", timedOut: false, ...defaults, ...this.script(argv, this) };
    if (program === "nix-env" && result.exitCode === 0 && args[0] === "-p" && args[2] === "--set") setProfileLink(this.f.profile, args[3] as string);
    if (program?.endsWith(SWITCH) && (args[0] === "switch" || args[0] === "test") && !result.timedOut)
      setLink(this.f.currentLink, program.slice(0, -SWITCH.length));
    return result;
  }

  /** Commands that change the machine: fetches (realise with options), profile sets, switches. */
  get changes(): string[][] {
    return this.calls
      .filter(
        ([program, op], i) =>
          (program === "nix-store" && op === "--realise" && this.calls[i]?.includes("--option")) ||
          (program === "nix-env" && op === "-p") ||
          program?.endsWith(SWITCH),
      )
      .map((argv) => (argv[0] === "nix-store" ? argv.slice(0, 3) : argv));
  }
}

interface Fixture {
  dir: string;
  profile: string;
  currentLink: string;
  stateFile: string;
  system: FakeSystem;
  tx: ActivationTransaction;
  progress: HostPhase[];
  clock: { now: number };
  readState(): { appliedSerial: number; transaction: Record<string, unknown> | null; lastResult: ActivationResult | null };
  metrics: AgentMetricsFile | undefined;
}

interface Options {
  previous?: string;
  profileTarget?: string;
  heartbeat?: (timeoutMs: number) => Promise<boolean>;
  healthChecks?: unknown[];
  /** Reuse the directories of an earlier fixture, as a restarted agent does. */
  reuse?: Fixture;
  /** Write the metrics textfile into this directory. */
  metricsDir?: string;
}

function fixture(options: Options = {}): Fixture {
  const dir = options.reuse?.dir ?? join(root, `case-${++counter}`);
  const stateDir = join(dir, "state");
  const profile = join(dir, "profiles", "system");
  const currentLink = join(dir, "run", "current-system");
  const stateFile = join(stateDir, "state.json");
  mkdirSync(stateDir, { recursive: true });
  // The agent signs in to its controller's cache with this token (a netrc written before each fetch).
  writeFileSync(join(dir, "token"), "activation-test-token\n", { mode: 0o600 });
  if (options.previous !== undefined) setLink(currentLink, options.previous);
  if (options.profileTarget !== undefined) setProfileLink(profile, options.profileTarget);
  const config = parseAgentConfig({
    controllerUrl: "ws://127.0.0.1:1/agent",
    hostName: "web1",
    tokenFile: join(dir, "token"),
    substituters: ["http://127.0.0.1:1/cache"],
    trustedPublicKeys: [HOST_KEY.publicKey],
    stateDir,
    profile,
    currentSystemLink: currentLink,
    diskReserveMiB: 0,
    healthChecks: options.healthChecks ?? [],
  });
  const log = silentLogger();
  const state = new StateFile(stateDir, log);
  const system = new FakeSystem({ profile, currentLink, stateFile });
  const progress: HostPhase[] = [];
  // Time moves only when the transaction sleeps: deadlines pass instantly and deterministically.
  const clock = { now: 1_700_000_000_000 };
  const metrics = options.metricsDir ? new AgentMetricsFile(promClient, options.metricsDir, log, () => clock.now) : undefined;
  const tx = new ActivationTransaction({
    config,
    nix: new Nix(system),
    runner: system,
    state,
    log,
    now: () => clock.now,
    sleep: async (ms) => {
      clock.now += Math.max(ms, 1);
    },
    progress: (_serial, phase) => progress.push(phase),
    heartbeat: options.heartbeat,
    metrics,
  });
  const readState = (): ReturnType<Fixture["readState"]> => JSON.parse(readFileSync(stateFile, "utf8"));
  return { dir, profile, currentLink, stateFile, system, tx, progress, clock, readState, metrics };
}

const fetchOf = (path: string): string[] => ["nix-store", "--realise", path];
const setProfileTo = (f: Fixture, path: string): string[] => ["nix-env", "-p", f.profile, "--set", path];
const switchTo = (path: string, action = "switch"): string[] => [`${path}${SWITCH}`, action];
const desired = (serial: number, storePath = NEXT, strategy: "switch" | "trial" | "boot" | "test" = "switch") => ({
  serial,
  storePath,
  deploymentId: `d${serial}`,
  strategy,
});

describe("ActivationTransaction.run (switch strategy)", () => {
  test("success: fetch, set the profile, switch; result, state and GC roots", async () => {
    const f = fixture({ previous: PREV, profileTarget: PREV });
    const result = await f.tx.run(desired(7));
    assert.deepEqual(f.system.changes, [fetchOf(NEXT), setProfileTo(f, NEXT), switchTo(NEXT)]);
    const realise = f.system.calls.find((argv) => argv[1] === "--realise" && argv.includes("--option")) as string[];
    assert.equal(realise[realise.indexOf("--add-root") + 1], join(f.dir, "state", "gcroots", "next"));
    // What runs now and what ran before stay alive through GC roots.
    const roots = f.system.calls.filter((argv) => argv[1] === "--realise" && !argv.includes("--option")).map((argv) => [argv[2], argv.at(-1)]);
    assert.deepEqual(roots, [
      [NEXT, join(f.dir, "state", "gcroots", "current")],
      [PREV, join(f.dir, "state", "gcroots", "previous")],
    ]);

    assert.equal(result.success, true);
    assert.equal(result.phase, HostPhase.HOST_PHASE_ACTIVE);
    assert.equal(result.errorCode, "");
    assert.deepEqual([result.serial, result.storePath, result.hostName, result.currentSystem], [7, NEXT, "web1", NEXT]);
    assert.equal(readlinkSync(f.currentLink), NEXT);
    assert.equal(profileTarget(f.profile), NEXT);
    const onDisk = f.readState();
    assert.equal(onDisk.appliedSerial, 7);
    assert.equal(onDisk.transaction, null);
    assert.deepEqual(onDisk.lastResult, result);
    assert.deepEqual(f.progress.slice(0, 2), [HostPhase.HOST_PHASE_FETCHING, HostPhase.HOST_PHASE_ACTIVATING]);
  });

  test("each step's phase is on disk before the step runs", async () => {
    const f = fixture({ previous: PREV, profileTarget: PREV });
    await f.tx.run(desired(3));
    const phaseAt = (match: (argv: string[]) => boolean): string | undefined => {
      const i = f.system.calls.findIndex(match);
      assert.ok(i >= 0);
      return f.system.stateAtCall[i]?.transaction?.phase;
    };
    assert.equal(
      phaseAt((argv) => argv[1] === "--realise" && argv.includes("--option")),
      "fetching",
    );
    assert.equal(
      phaseAt((argv) => argv[0] === "nix-env"),
      "activating",
    );
    assert.equal(
      phaseAt((argv) => argv[0] === `${NEXT}${SWITCH}`),
      "activating",
    );
  });

  test("the desired system already running: nothing changes, success", async () => {
    const f = fixture({ previous: NEXT, profileTarget: NEXT });
    const result = await f.tx.run(desired(2));
    assert.deepEqual(f.system.changes, []);
    assert.equal(result.success, true);
    assert.equal(f.readState().appliedSerial, 2);
  });

  test("fetch failure: no profile change, no switch; FAILED with the fetch's code", async () => {
    const f = fixture({ previous: PREV, profileTarget: PREV });
    f.system.script = (argv) =>
      argv[1] === "--realise" && argv.includes("--option") ? { exitCode: 1, stderr: `don't know how to build these paths:\n  ${NEXT}\n` } : undefined;
    const result = await f.tx.run(desired(4));
    assert.ok(f.system.changes.length >= 1);
    assert.ok(
      f.system.changes.every((argv) => argv[0] === "nix-store"),
      JSON.stringify(f.system.changes),
    );
    assert.equal(result.success, false);
    assert.equal(result.phase, HostPhase.HOST_PHASE_FAILED);
    assert.equal(result.errorCode, "E_PATH_NOT_IN_CACHE");
    assert.match(result.output, /don't know how to build/);
    assert.equal(result.currentSystem, PREV);
    assert.equal(profileTarget(f.profile), PREV);
    const onDisk = f.readState();
    assert.equal(onDisk.transaction, null);
    assert.equal(onDisk.appliedSerial, 4);
    assert.deepEqual(onDisk.lastResult, result);
  });

  test("an unsigned closure is not retried", async () => {
    const f = fixture({ previous: PREV, profileTarget: PREV });
    f.system.script = (argv) => (argv[1] === "--realise" ? { exitCode: 1, stderr: "is not signed by any of the keys in 'trusted-public-keys'" } : undefined);
    const result = await f.tx.run(desired(4));
    assert.deepEqual(f.system.changes, [fetchOf(NEXT)]);
    assert.equal(result.errorCode, "E_UNSIGNED_PATH");
  });

  test("a closure already in the store but not signed by a trusted key: refused after the fetch, before any switch", async () => {
    const f = fixture({ previous: PREV, profileTarget: PREV });
    // What nix-store --realise never checks: a path that was valid before it ran, built on the host.
    f.system.script = (argv) =>
      argv[0] === "nix" && argv.includes("--sigs")
        ? { stdout: JSON.stringify([pathInfoJson(NEXT, null)]) }
        : argv[0] === "nix-store" && argv.includes("--print-invalid")
          ? { stdout: "" } // already valid here: nothing to fetch, so the disk-space check has nothing to judge
          : undefined;
    const result = await f.tx.run(desired(4));
    assert.deepEqual(f.system.changes, [fetchOf(NEXT)]);
    assert.equal(result.errorCode, "E_UNSIGNED_PATH");
    assert.match(result.errorMessage, new RegExp(`^${NEXT} carries no signature`));
    assert.equal(result.phase, HostPhase.HOST_PHASE_FAILED);
    assert.equal(readlinkSync(f.currentLink), PREV);
    assert.equal(profileTarget(f.profile), PREV);
    assert.equal(f.readState().transaction, null);
  });

  test("not enough disk space: E_NO_SPACE before anything is fetched", async () => {
    const f = fixture({ previous: PREV, profileTarget: PREV });
    // A closure whose trusted signature covers its (huge) NAR size.
    f.system.script = (argv) =>
      argv[0] === "nix" && argv.includes("--recursive") ? { stdout: JSON.stringify([pathInfoJson(NEXT, HOST_KEY, [], 2 ** 52)]) } : undefined;
    const result = await f.tx.run(desired(4));
    assert.deepEqual(f.system.changes, []);
    assert.equal(result.errorCode, "E_NO_SPACE");
  });

  test("a cache understating an unsigned closure's size cannot pass the disk-space check: refused before anything is fetched", async () => {
    const f = fixture({ previous: PREV, profileTarget: PREV });
    f.system.script = (argv) =>
      argv[0] === "nix" && argv.includes("--recursive") ? { stdout: JSON.stringify([{ ...pathInfoJson(NEXT, null), narSize: 1 }]) } : undefined;
    const result = await f.tx.run(desired(4));
    assert.deepEqual(f.system.changes, []);
    assert.equal(result.errorCode, "E_UNSIGNED_PATH");
  });

  test("a closure whose signature covers another size is refused before the fetch: the size was altered", async () => {
    const f = fixture({ previous: PREV, profileTarget: PREV });
    f.system.script = (argv) =>
      argv[0] === "nix" && argv.includes("--recursive") ? { stdout: JSON.stringify([{ ...pathInfoJson(NEXT, HOST_KEY), narSize: 1 }]) } : undefined;
    const result = await f.tx.run(desired(4));
    assert.deepEqual(f.system.changes, []);
    assert.equal(result.errorCode, "E_UNSIGNED_PATH");
    assert.equal(result.phase, HostPhase.HOST_PHASE_FAILED);
  });

  test("switch failure: roll back; ROLLED_BACK with E_ACTIVATION_FAILED and the output", async () => {
    const f = fixture({ previous: PREV, profileTarget: PREV });
    f.system.script = (argv) => (argv[0] === `${NEXT}${SWITCH}` ? { exitCode: 4, stderr: "warning: the following units failed: nginx.service\n" } : undefined);
    const result = await f.tx.run(desired(5));
    assert.deepEqual(f.system.changes, [fetchOf(NEXT), setProfileTo(f, NEXT), switchTo(NEXT), setProfileTo(f, PREV), switchTo(PREV)]);
    assert.equal(result.success, false);
    assert.equal(result.phase, HostPhase.HOST_PHASE_ROLLED_BACK);
    assert.equal(result.errorCode, "E_ACTIVATION_FAILED");
    assert.match(result.output, /nginx\.service/);
    assert.equal(result.currentSystem, PREV);
    assert.equal(readlinkSync(f.currentLink), PREV);
    assert.equal(profileTarget(f.profile), PREV);
    assert.ok(f.progress.includes(HostPhase.HOST_PHASE_ROLLING_BACK));
    const onDisk = f.readState();
    assert.equal(onDisk.transaction, null);
    assert.equal(onDisk.appliedSerial, 5);
    assert.deepEqual(onDisk.lastResult, result);
  });

  test("switch timeout: rolled back with E_ACTIVATION_TIMEOUT", async () => {
    const f = fixture({ previous: PREV, profileTarget: PREV });
    f.system.script = (argv) => (argv[0] === `${NEXT}${SWITCH}` ? { exitCode: null, signal: "SIGTERM", timedOut: true, stdout: "restarting sshd" } : undefined);
    const result = await f.tx.run(desired(6));
    assert.equal(result.phase, HostPhase.HOST_PHASE_ROLLED_BACK);
    assert.equal(result.errorCode, "E_ACTIVATION_TIMEOUT");
    assert.deepEqual(f.system.changes.slice(-2), [setProfileTo(f, PREV), switchTo(PREV)]);
  });

  test("a failing rollback is FAILED with E_ROLLBACK_FAILED and both outputs", async () => {
    const f = fixture({ previous: PREV, profileTarget: PREV });
    f.system.script = (argv) => (argv[0]?.endsWith(SWITCH) ? { exitCode: 1, stderr: `boom from ${argv[0]}` } : undefined);
    const result = await f.tx.run(desired(8));
    assert.equal(result.phase, HostPhase.HOST_PHASE_FAILED);
    assert.equal(result.errorCode, "E_ROLLBACK_FAILED");
    assert.match(result.output, new RegExp(`boom from ${NEXT}`));
    assert.match(result.output, new RegExp(`boom from ${PREV}`));
    assert.equal(f.readState().transaction, null);
  });

  test("no previous system: a failed switch is FAILED without a rollback attempt", async () => {
    const f = fixture();
    f.system.script = (argv) => (argv[0] === `${NEXT}${SWITCH}` ? { exitCode: 1 } : undefined);
    const result = await f.tx.run(desired(1));
    assert.deepEqual(f.system.changes, [fetchOf(NEXT), setProfileTo(f, NEXT), switchTo(NEXT)]);
    assert.equal(result.phase, HostPhase.HOST_PHASE_FAILED);
    assert.equal(result.errorCode, "E_ACTIVATION_FAILED");
  });

  test("a health check that fails only on the new system rolls it back (E_HEALTH_CHECK_FAILED)", async () => {
    const check = "/run/ferry-test/check-app";
    const f = fixture({ previous: PREV, profileTarget: PREV, healthChecks: [{ type: "command", argv: [check], timeout: 1 }] });
    f.system.script = (argv, fake) => (argv[0] === check ? { exitCode: readlinkSync(fake.f.currentLink) === NEXT ? 1 : 0, stdout: "app down" } : undefined);
    const result = await f.tx.run(desired(9));
    assert.equal(result.phase, HostPhase.HOST_PHASE_ROLLED_BACK);
    assert.equal(result.errorCode, "E_HEALTH_CHECK_FAILED");
    assert.equal(readlinkSync(f.currentLink), PREV);
    assert.deepEqual(f.system.changes.slice(-2), [setProfileTo(f, PREV), switchTo(PREV)]);
  });

  test("a check failing before and after the switch: confirmed (the baseline rule), and the result names it", async () => {
    const broken = "/run/ferry-test/check-db";
    const fine = "/run/ferry-test/check-app";
    const f = fixture({
      previous: PREV,
      profileTarget: PREV,
      healthChecks: [
        { type: "command", argv: [fine], timeout: 1 },
        { type: "command", argv: [broken, "--ping"], timeout: 1 },
      ],
    });
    f.system.script = (argv) => (argv[0] === broken ? { exitCode: 1, stdout: "db down" } : undefined);
    const result = await f.tx.run(desired(12));
    assert.equal(result.success, true);
    assert.equal(result.phase, HostPhase.HOST_PHASE_ACTIVE);
    assert.deepEqual(result.checksFailingBeforeAndAfter, [`command:${broken} --ping`]);
    assert.equal(result.checksRun, 2);
    assert.deepEqual(f.readState().lastResult, result, "kept on disk, so a reconnect re-sends it");
  });

  test("a check failing before the switch and passing after it is not reported", async () => {
    const check = "/run/ferry-test/check-app";
    const f = fixture({ previous: PREV, profileTarget: PREV, healthChecks: [{ type: "command", argv: [check], timeout: 1 }] });
    f.system.script = (argv, fake) => (argv[0] === check ? { exitCode: readlinkSync(fake.f.currentLink) === NEXT ? 0 : 1 } : undefined);
    const result = await f.tx.run(desired(13));
    assert.equal(result.success, true);
    assert.deepEqual(result.checksFailingBeforeAndAfter, []);
    assert.equal(result.checksRun, 1);
  });

  test("a strict check counts even when it failed before the switch: rolled back", async () => {
    const check = "/run/ferry-test/check-app";
    const f = fixture({ previous: PREV, profileTarget: PREV, healthChecks: [{ type: "command", argv: [check], timeout: 1, strict: true }] });
    f.system.script = (argv) => (argv[0] === check ? { exitCode: 1 } : undefined);
    const result = await f.tx.run(desired(14));
    assert.equal(result.phase, HostPhase.HOST_PHASE_ROLLED_BACK);
    assert.equal(result.errorCode, "E_HEALTH_CHECK_FAILED");
    assert.deepEqual(result.checksFailingBeforeAndAfter, []);
  });

  test("with a controller: unreachable before the switch → not switched (E_CONTROLLER_UNREACHABLE)", async () => {
    const f = fixture({ previous: PREV, profileTarget: PREV, heartbeat: async () => false });
    const result = await f.tx.run(desired(10));
    assert.deepEqual(f.system.changes, [fetchOf(NEXT)]);
    assert.equal(result.errorCode, "E_CONTROLLER_UNREACHABLE");
    assert.equal(readlinkSync(f.currentLink), PREV);
  });

  test("appliedSerial never goes backwards", async () => {
    const f = fixture({ previous: PREV, profileTarget: PREV });
    await f.tx.run(desired(9));
    await f.tx.run(desired(3, PREV));
    const onDisk = f.readState();
    assert.equal(onDisk.appliedSerial, 9);
    assert.equal(onDisk.lastResult?.serial, 3);
  });
});

describe("ActivationTransaction.resume", () => {
  /** A transaction file as a previous agent process left it. */
  function persist(f: Fixture, phase: string, extra: Record<string, unknown> = {}): void {
    const transaction = {
      ...extra,
      serial: 11,
      deploymentId: "d11",
      next: NEXT,
      previous: PREV,
      strategy: "switch",
      phase,
      startedAtMs: 1,
      deadlineMs: f.clock.now + 600_000,
      requireHeartbeat: false,
      failingBefore: [],
    };
    writeFileSync(f.stateFile, JSON.stringify({ version: 1, appliedSerial: 10, lastResult: null, transaction }));
  }

  test("nothing to resume: undefined, no command", async () => {
    const f = fixture({ previous: PREV, profileTarget: PREV });
    assert.equal(await f.tx.resume(), undefined);
    assert.deepEqual(f.system.calls, []);
  });

  test("interrupted while activating, before the switch took effect: rolled back", async () => {
    const first = fixture({ previous: PREV, profileTarget: NEXT });
    persist(first, "activating");
    const f = fixture({ reuse: first });
    const result = await f.tx.resume();
    assert.ok(result);
    assert.deepEqual(f.system.changes, [setProfileTo(f, PREV), switchTo(PREV)]);
    assert.equal(result.phase, HostPhase.HOST_PHASE_ROLLED_BACK);
    assert.equal(result.success, false);
    assert.equal(result.serial, 11);
    assert.ok(["E_INTERRUPTED", "E_ACTIVATION_FAILED"].includes(result.errorCode), result.errorCode);
    assert.equal(readlinkSync(f.currentLink), PREV);
    assert.equal(profileTarget(f.profile), PREV);
    const onDisk = f.readState();
    assert.equal(onDisk.transaction, null);
    assert.equal(onDisk.appliedSerial, 11);
    assert.deepEqual(onDisk.lastResult, result);
  });

  test("interrupted while activating after current-system moved: the switch is re-run to learn its outcome", async () => {
    const first = fixture({ previous: NEXT, profileTarget: NEXT });
    persist(first, "activating");
    const f = fixture({ reuse: first });
    f.system.script = (argv) => (argv[0] === `${NEXT}${SWITCH}` ? { exitCode: 4, stderr: "units failed" } : undefined);
    const result = await f.tx.resume();
    assert.ok(result);
    const rerun = JSON.stringify(switchTo(NEXT));
    assert.equal(f.system.changes.filter((change) => JSON.stringify(change) === rerun).length, 1, "the switch was run again");
    assert.equal(result.phase, HostPhase.HOST_PHASE_ROLLED_BACK);
    assert.equal(result.errorCode, "E_ACTIVATION_FAILED");
  });

  test("interrupted while fetching: carried on to the end", async () => {
    const first = fixture({ previous: PREV, profileTarget: PREV });
    persist(first, "fetching");
    const f = fixture({ reuse: first });
    const result = await f.tx.resume();
    assert.ok(result);
    assert.deepEqual(f.system.changes, [fetchOf(NEXT), setProfileTo(f, NEXT), switchTo(NEXT)]);
    assert.equal(result.success, true);
    assert.equal(f.readState().appliedSerial, 11);
    assert.equal(f.readState().transaction, null);
  });

  test("interrupted after confirmation: the result still names the checks failing before and after", async () => {
    const first = fixture({ previous: NEXT, profileTarget: NEXT });
    persist(first, "confirmed", { confirmedChecks: { run: 2, failingBeforeAndAfter: ["systemd:nginx.service"] } });
    const f = fixture({ reuse: first });
    const result = await f.tx.resume();
    assert.ok(result);
    assert.equal(result.phase, HostPhase.HOST_PHASE_ACTIVE);
    assert.deepEqual(result.checksFailingBeforeAndAfter, ["systemd:nginx.service"]);
    assert.equal(result.checksRun, 2);
  });

  test("interrupted while rolling back: the rollback is finished", async () => {
    const first = fixture({ previous: NEXT, profileTarget: NEXT });
    persist(first, "rolling-back");
    const f = fixture({ reuse: first });
    const result = await f.tx.resume();
    assert.ok(result);
    assert.deepEqual(f.system.changes, [setProfileTo(f, PREV), switchTo(PREV)]);
    assert.equal(result.phase, HostPhase.HOST_PHASE_ROLLED_BACK);
    assert.equal(readlinkSync(f.currentLink), PREV);
  });
});

describe("metrics textfile", () => {
  /** The samples of DIR/ferry_agent.prom, by name and labels as printed. */
  function readMetrics(dir: string): Map<string, number> {
    const text = readFileSync(join(dir, "ferry_agent.prom"), "utf8");
    return new Map(
      text
        .split("\n")
        .filter((line) => line !== "" && !line.startsWith("#"))
        .map((line) => [line.slice(0, line.lastIndexOf(" ")), Number(line.slice(line.lastIndexOf(" ") + 1))]),
    );
  }

  test("a confirmed activation, then one rolled back by its health check: steps, checks, rollback reason, fetched bytes", async () => {
    const check = "/run/ferry-test/check-app";
    const metricsDir = join(root, `metrics-${++counter}`);
    const f = fixture({ previous: PREV, profileTarget: PREV, metricsDir, healthChecks: [{ type: "command", argv: [check], timeout: 1 }] });
    let healthy = true;
    f.system.script = (argv) => (argv[0] === check ? { exitCode: healthy ? 0 : 1 } : undefined);
    assert.equal((await f.tx.run(desired(1))).phase, HostPhase.HOST_PHASE_ACTIVE);
    await f.metrics?.idle();
    let m = readMetrics(metricsDir);
    assert.equal(m.get('ferry_agent_transactions_total{outcome="active"}'), 1);
    assert.equal(m.get("ferry_agent_last_transaction_serial"), 1);
    assert.equal(m.get("ferry_agent_last_transaction_timestamp_seconds"), 1_700_000_000);
    // The fake store reports one 4096-byte NAR missing.
    assert.equal(m.get("ferry_agent_fetch_bytes_total"), 4096);
    for (const phase of ["fetching", "fetched", "activating", "confirming", "confirmed"]) {
      assert.ok(m.has(`ferry_agent_phase_duration_seconds{phase="${phase}"}`), phase);
    }
    assert.equal(m.get(`ferry_agent_health_check_passed{stage="confirm",check="command:${check}"}`), 1);
    assert.equal(m.get('ferry_agent_health_checks_total{stage="before-switch",result="pass"}'), 1);

    // The next system fails its check until the deadline: the clock moves only while the transaction sleeps.
    const second = "/nix/store/3zy01hjzwvvia6h9dq5xar88v77fgh9x-nixos-system-web1-newer";
    f.system.script = (argv, fake) => (argv[0] === check ? { exitCode: readlinkSync(fake.f.currentLink) === second ? 1 : 0 } : undefined);
    healthy = false;
    assert.equal((await f.tx.run(desired(2, second))).phase, HostPhase.HOST_PHASE_ROLLED_BACK);
    await f.metrics?.idle();
    m = readMetrics(metricsDir);
    assert.equal(m.get('ferry_agent_rollbacks_total{reason="E_HEALTH_CHECK_FAILED"}'), 1);
    assert.equal(m.get('ferry_agent_transactions_total{outcome="rolled-back"}'), 1);
    assert.equal(m.get('ferry_agent_transactions_total{outcome="active"}'), 1);
    assert.equal(m.get(`ferry_agent_health_check_passed{stage="confirm",check="command:${check}"}`), 0);
    assert.equal(m.get(`ferry_agent_health_check_passed{stage="after-rollback",check="command:${check}"}`), 1);
    assert.ok((m.get('ferry_agent_phase_seconds_total{phase="confirming"}') ?? 0) >= 120, "the confirmation waited out its deadline");
    // Only the finished file is there: no temp file left beside it for the collector to trip on.
    assert.deepEqual(readdirSync(metricsDir), ["ferry_agent.prom"]);
  });

  test("a directory that cannot be written is logged, and the transaction goes on", async () => {
    const blocker = join(root, `not-a-dir-${++counter}`);
    writeFileSync(blocker, "");
    const f = fixture({ previous: PREV, profileTarget: PREV, metricsDir: join(blocker, "metrics") });
    assert.equal((await f.tx.run(desired(1))).phase, HostPhase.HOST_PHASE_ACTIVE);
    await f.metrics?.idle();
  });
});
