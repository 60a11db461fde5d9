// The rollout engine driven one step at a time against a real SQLite store in
// a temp dir, a fake agent hub that records pushes, and a fake clock. Agents
// are simulated by writing the reports they would send for the serial the
// rollout assigned.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateKeyPairSync } from "node:crypto";
import { FerryError, createIntent, hashToken, parseSecretKey, signIntent, silentLogger, type ErrorCode, type IntentMode } from "@ferry/core";
import { ActivationMode, HostPhase, type RolloutPolicy as PolicyMessage, type SignedIntent, type StartRolloutRequest } from "@ferry/protocol";
import { recordDeploy } from "../src/api/deploy.js";
import { toRolloutMessage } from "../src/api/rollout-service.js";
import type { BinaryCache } from "../src/cache/binary-cache.js";
import type { AgentHub } from "../src/hub/agent-hub.js";
import { DesiredState } from "../src/desired/desired-state.js";
import { RolloutEngine } from "../src/rollouts/engine.js";
import { rolloutOutcome } from "../src/rollouts/outcome.js";
import { planRollout } from "../src/rollouts/start.js";
import type { RolloutHostRecord, RolloutHostState, RolloutRecord } from "../src/store/rollout-records.js";
import { openSqliteStore } from "../src/store/open-store.js";
import type { SqlStateStore } from "../src/store/sql-store.js";
import type { HostRecord } from "../src/store/state-store.js";
import { recordDeployment } from "./record-deployment.js";

const root = mkdtempSync(join(tmpdir(), "ferry-rollout-engine-"));
after(() => rmSync(root, { recursive: true, force: true }));

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const NIX_BASE32 = "0123456789abcdfghijklmnpqrsvwxyz";

/** A well-formed, deterministic store path for a label. */
function storePath(label: string): string {
  const digest = createHash("sha256").update(label).digest();
  const hash = Array.from(digest.subarray(0, 32), (byte) => NIX_BASE32[byte % 32]).join("");
  return `/nix/store/${hash}-nixos-system-${label}`;
}

const OLD = (host: string) => storePath(`${host}-old`);
const NEW = (host: string) => storePath(`${host}-new`);

/** Everything is in the cache: the engine does not look at it. */
const cache = { closureInfos: async () => new Map(), withoutCollection: <T>(work: () => Promise<T>) => work() } as unknown as BinaryCache;

interface Push {
  host: string;
  serial: number;
  system: string;
  activate: boolean;
  mode: ActivationMode;
}

/**
 * The store as the controller uses it: every write that changes a host is
 * announced to the engine (the controller does this through its host events).
 */
type AnnouncingStore = SqlStateStore & { announce: (names: readonly string[]) => void };

async function openAnnouncingStore(file: string): Promise<AnnouncingStore> {
  const store = (await openSqliteStore(file)) as AnnouncingStore;
  store.announce = () => undefined;
  const { recordReport, assignDesired, removeHost } = store;
  store.recordReport = async (...args) => {
    const record = await recordReport.apply(store, args);
    store.announce([record.name]);
    return record;
  };
  store.assignDesired = async (...args) => {
    const records = await assignDesired.apply(store, args);
    store.announce(records.map((record) => record.name));
    return records;
  };
  store.removeHost = async (name) => {
    await removeHost.call(store, name);
    store.announce([name]);
  };
  return store;
}

function policy(patch: Partial<PolicyMessage> = {}): PolicyMessage {
  return {
    canary: undefined,
    batch: undefined,
    maxUnavailable: 1,
    failureThreshold: undefined,
    minExecuted: 0,
    pauseMs: 0,
    gate: false,
    progressDeadlineMs: 0,
    rollbackOnAbort: false,
    prefetchTimeoutMs: 0,
    skipUnfetchable: false,
    acceptFailingChecks: false,
    ...patch,
  };
}

const count = (value: number) => ({ value, percent: false });
const percent = (value: number) => ({ value, percent: true });

async function rejectsCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof FerryError, `expected FerryError ${code}, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return true;
  });
}

let harnessCounter = 0;

class Harness {
  readonly file = join(root, `state-${++harnessCounter}.sqlite`);
  readonly clock = { now: Date.parse("2024-03-12T00:00:00Z") };
  readonly pushes: Push[] = [];
  readonly rolloutChanges: string[] = [];
  /** Hosts whose agent is not connected. */
  readonly offline = new Set<string>();
  store!: AnnouncingStore;
  engine!: RolloutEngine;
  private closed = false;

  async open(): Promise<void> {
    this.store = await openAnnouncingStore(this.file);
    this.engine = this.newEngine();
  }

  private newEngine(): RolloutEngine {
    const hub = {
      pushDesired: (host: HostRecord) => {
        this.pushes.push({
          host: host.name,
          serial: host.desiredSerial,
          system: host.desiredSystem,
          activate: host.desiredActivate,
          mode: host.activationMode,
        });
      },
      isOnline: (name: string) => !this.offline.has(name),
    } as unknown as AgentHub;
    const now = () => this.clock.now;
    const desired = new DesiredState({ store: this.store, cache, hub, log: silentLogger(), now, onChanged: () => undefined });
    const engine = new RolloutEngine({ store: this.store, desired, hub, log: silentLogger(), now, onRolloutChanged: (id) => this.rolloutChanges.push(id) });
    // Marked only: the test steps the engine itself, one step at a time.
    this.store.announce = (names) => engine.markChanged(names);
    return engine;
  }

  advance(ms: number): void {
    this.clock.now += ms;
  }

  /** Waits until no step the engine started on its own (e.g. after control()) is running. */
  async settle(): Promise<void> {
    await this.engine.idle();
  }

  /** One full engine step over every active rollout. */
  async tick(times = 1): Promise<void> {
    for (let i = 0; i < times; i++) {
      await this.settle();
      await this.engine.runStep();
    }
  }

  async addHosts(names: readonly string[], tags: readonly string[] = []): Promise<void> {
    for (const name of names) {
      await this.store.addHost(name, hashToken(`token-${name}`), tags, this.clock.now);
      // Each host runs an older system, the target of a rollback.
      await this.store.recordReport(name, { currentSystem: OLD(name), phase: HostPhase.HOST_PHASE_ACTIVE });
    }
  }

  async start(
    names: readonly string[],
    given: Partial<PolicyMessage> = {},
    mode = ActivationMode.ACTIVATION_MODE_UNSPECIFIED,
    intents: SignedIntent[] = [],
  ): Promise<string> {
    const request: StartRolloutRequest = {
      allowUnsigned: false,
      intents,
      targets: names.map((hostName) => ({ hostName, storePath: NEW(hostName), intent: undefined })),
      hostNames: [],
      tags: [],
      manifest: {},
      policy: policy(given),
      environment: "",
      afterEnvironment: "",
      requestedBy: "test",
      mode,
    };
    const record = await planRollout(this.store, cache, request, this.clock.now);
    await this.engine.begin(record);
    return record.id;
  }

  rollout(id: string): Promise<RolloutRecord> {
    return this.store.rollouts.getRollout(id);
  }

  async rolloutHost(id: string, name: string): Promise<RolloutHostRecord> {
    const host = (await this.rollout(id)).hosts.find((h) => h.name === name);
    assert.ok(host, `host ${name} is not in rollout ${id}`);
    return host;
  }

  async states(id: string): Promise<Record<string, RolloutHostState>> {
    return Object.fromEntries((await this.rollout(id)).hosts.map((host) => [host.name, host.state]));
  }

  async host(name: string): Promise<HostRecord> {
    const record = await this.store.getHost(name);
    assert.ok(record, `no host ${name}`);
    return record;
  }

  /** What the agent reports when it finished its desired serial with `phase`. */
  async report(name: string, phase: HostPhase, errorCode = ""): Promise<void> {
    const record = await this.host(name);
    assert.ok(record.desiredSerial > 0, `${name} was never given a desired system`);
    // A system installed for the next boot does not change what runs.
    const activated = phase === HostPhase.HOST_PHASE_ACTIVE;
    await this.store.recordReport(name, {
      appliedSerial: record.desiredSerial,
      phase,
      lastErrorCode: errorCode,
      lastErrorMessage: errorCode ? `simulated ${errorCode}` : "",
      ...(activated && record.desiredActivate ? { currentSystem: record.desiredSystem } : {}),
    });
  }

  /** The host rebooted into its boot default, and its agent reports it running (what agent.ts does on start). */
  async booted(name: string): Promise<void> {
    const record = await this.host(name);
    await this.store.recordReport(name, { phase: HostPhase.HOST_PHASE_ACTIVE, currentSystem: record.desiredSystem });
  }

  /** A confirmation whose health checks named `failing` as failing before and after the switch, of `run` checks. */
  async confirmedWithFailingChecks(name: string, failing: string[], run: number): Promise<void> {
    await this.report(name, HostPhase.HOST_PHASE_ACTIVE);
    await this.store.recordReport(name, { checksFailingBeforeAndAfter: failing, checksRun: run });
  }

  async fetched(names: readonly string[]): Promise<void> {
    for (const name of names) await this.report(name, HostPhase.HOST_PHASE_FETCHED);
  }

  async active(names: readonly string[]): Promise<void> {
    for (const name of names) await this.report(name, HostPhase.HOST_PHASE_ACTIVE);
  }

  /** Runs the prefetch phase to its end with every host fetching, and starts wave 1. */
  async prefetchAll(id: string): Promise<void> {
    await this.tick();
    await this.fetched((await this.rollout(id)).hosts.map((h) => h.name));
    await this.tick();
    const rollout = await this.rollout(id);
    assert.equal(rollout.state, "running", rollout.reason);
    assert.equal(rollout.currentWave, 1);
  }

  /** Closes the store and opens a new store and engine on the same file: a controller restart. */
  async restart(): Promise<void> {
    await this.settle();
    await this.engine.stop();
    await this.store.close();
    await this.open();
    await this.engine.load();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.settle().catch(() => undefined);
    await this.engine.stop();
    await this.store.close();
  }
}

const harnesses: Harness[] = [];
after(async () => {
  for (const harness of harnesses) await harness.close().catch(() => undefined);
});

async function harness(): Promise<Harness> {
  const h = new Harness();
  await h.open();
  harnesses.push(h);
  return h;
}

const fleet = (size: number, prefix = "web") => Array.from({ length: size }, (_, i) => `${prefix}-${i + 1}`);

function activated(h: Harness, names: readonly string[] = []): string[] {
  return h.pushes.filter((push) => push.activate && (names.length === 0 || names.includes(push.host))).map((push) => push.host);
}

describe("RolloutEngine prefetch", () => {
  test("assigns every host activate=false, and starts wave 1 only once every host fetched", async () => {
    const h = await harness();
    const hosts = fleet(4);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { canary: count(1), batch: count(2), maxUnavailable: 2 });
    assert.deepEqual(await h.states(id), { "web-1": "pending", "web-2": "pending", "web-3": "pending", "web-4": "pending" });

    await h.tick();
    assert.deepEqual(
      h.pushes.map((p) => [p.host, p.system, p.activate]),
      hosts.map((name) => [name, NEW(name), false]),
    );
    for (const name of hosts) {
      const record = await h.host(name);
      assert.equal(record.desiredActivate, false);
      assert.equal(record.desiredSystem, NEW(name));
      assert.equal(record.rolloutId, id);
      assert.equal(record.phase, HostPhase.HOST_PHASE_PENDING);
      assert.equal((await h.rolloutHost(id, name)).serial, record.desiredSerial);
    }
    assert.deepEqual(Object.values(await h.states(id)), ["prefetching", "prefetching", "prefetching", "prefetching"]);

    // Another step assigns nothing new.
    await h.tick();
    assert.equal(h.pushes.length, 4);

    // Three of four fetched: still prefetching, nothing activates.
    await h.fetched(["web-1", "web-2", "web-3"]);
    // An intermediate progress report (no applied serial yet) changes nothing.
    await h.store.recordReport("web-4", { phase: HostPhase.HOST_PHASE_FETCHING });
    await h.tick(3);
    let rollout = await h.rollout(id);
    assert.equal(rollout.state, "prefetching");
    assert.equal(rollout.currentWave, 0);
    assert.deepEqual(await h.states(id), { "web-1": "prefetched", "web-2": "prefetched", "web-3": "prefetched", "web-4": "prefetching" });
    assert.deepEqual(activated(h), []);

    await h.fetched(["web-4"]);
    await h.tick();
    rollout = await h.rollout(id);
    assert.equal(rollout.state, "running");
    assert.equal(rollout.currentWave, 1);
    assert.equal(rollout.waveCount, 3);

    // The next step activates the canary only.
    await h.tick();
    assert.deepEqual(activated(h), ["web-1"]);
    const canary = await h.host("web-1");
    assert.equal(canary.desiredActivate, true);
    assert.equal(canary.desiredSystem, NEW("web-1"));
    assert.equal((await h.rolloutHost(id, "web-1")).state, "activating");
    assert.equal((await h.host("web-2")).desiredActivate, false);
  });

  test("a prefetch failure pauses the rollout; resume skips the host and goes on", async () => {
    const h = await harness();
    const hosts = fleet(3);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { maxUnavailable: 3 });
    await h.tick();
    await h.fetched(["web-1", "web-3"]);
    await h.report("web-2", HostPhase.HOST_PHASE_FAILED, "E_FETCH_FAILED");
    await h.tick();

    let rollout = await h.rollout(id);
    assert.equal(rollout.state, "paused");
    assert.match(rollout.reason, /prefetch failed on web-2 \(E_FETCH_FAILED\)/);
    const web2 = await h.rolloutHost(id, "web-2");
    assert.equal(web2.state, "unfetchable");
    assert.equal(web2.errorCode, "E_FETCH_FAILED");
    // Paused: further steps activate nothing.
    await h.tick(2);
    assert.deepEqual(activated(h), []);

    await h.engine.control(id, "resume", "");
    await h.settle();
    rollout = await h.rollout(id);
    assert.equal((await h.rolloutHost(id, "web-2")).state, "skipped");
    await h.tick();
    assert.deepEqual(activated(h).sort(), ["web-1", "web-3"]);
    assert.equal((await h.host("web-2")).desiredActivate, false);
  });

  test("with skipUnfetchable a prefetch failure skips the host and wave 1 starts", async () => {
    const h = await harness();
    const hosts = fleet(3);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { maxUnavailable: 3, skipUnfetchable: true });
    await h.tick();
    await h.fetched(["web-1", "web-3"]);
    await h.report("web-2", HostPhase.HOST_PHASE_FAILED, "E_FETCH_FAILED");
    await h.tick();
    const rollout = await h.rollout(id);
    assert.equal(rollout.state, "running");
    assert.equal(rollout.currentWave, 1);
    const web2 = await h.rolloutHost(id, "web-2");
    assert.equal(web2.state, "skipped");
    assert.equal(web2.errorCode, "E_FETCH_FAILED");
    await h.tick();
    assert.deepEqual(activated(h).sort(), ["web-1", "web-3"]);
    await h.active(["web-1", "web-3"]);
    await h.tick();
    const done = await h.rollout(id);
    assert.equal(done.state, "completed");
    assert.match(done.reason, /^completed with 1 skipped \(skipped: web-2 \(E_FETCH_FAILED: .*\)\); 2 confirmed$/);
  });

  test("hosts that do not fetch before the prefetch timeout become unfetchable", async () => {
    const h = await harness();
    const hosts = fleet(2);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { prefetchTimeoutMs: 10 * MINUTE, skipUnfetchable: true });
    await h.tick();
    await h.fetched(["web-1"]);
    h.advance(10 * MINUTE);
    await h.tick();
    assert.equal((await h.rollout(id)).state, "prefetching", "exactly at the timeout it still waits");
    h.advance(1);
    await h.tick();
    const web2 = await h.rolloutHost(id, "web-2");
    assert.equal(web2.state, "skipped");
    assert.equal(web2.errorCode, "E_PREFETCH_TIMEOUT");
    assert.equal((await h.rollout(id)).state, "running");
  });

  test("prefetching ignores maintenance windows", async () => {
    const h = await harness();
    await h.addHosts(["db-1"], ["db"]);
    await h.store.rollouts.addWindow({ id: "w-1", hostName: "", tag: "db", cron: "0 2 * * *", durationMs: 2 * HOUR, timezone: "UTC" });
    const id = await h.start(["db-1"]);
    await h.tick();
    assert.equal((await h.rolloutHost(id, "db-1")).state, "prefetching");
    assert.deepEqual(
      h.pushes.map((p) => [p.host, p.activate]),
      [["db-1", false]],
    );
  });
});

describe("RolloutEngine waves", () => {
  test("a healthy rollout runs canary then batches in order and completes", async () => {
    const h = await harness();
    const hosts = fleet(5);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { canary: count(1), batch: count(2), maxUnavailable: 2 });
    await h.prefetchAll(id);
    const waves = Object.fromEntries((await h.rollout(id)).hosts.map((host) => [host.name, host.wave]));
    assert.deepEqual(waves, { "web-1": 1, "web-2": 2, "web-3": 2, "web-4": 3, "web-5": 3 });

    await h.tick();
    assert.deepEqual(activated(h), ["web-1"]);
    await h.active(["web-1"]);
    await h.tick(); // confirms the canary and begins wave 2
    assert.equal((await h.rollout(id)).currentWave, 2);
    await h.tick();
    assert.deepEqual(activated(h), ["web-1", "web-2", "web-3"]);
    await h.active(["web-2", "web-3"]);
    await h.tick(2);
    assert.equal((await h.rollout(id)).currentWave, 3);
    assert.deepEqual(activated(h), ["web-1", "web-2", "web-3", "web-4", "web-5"]);
    await h.active(["web-4", "web-5"]);
    await h.tick();
    const done = await h.rollout(id);
    assert.equal(done.state, "completed");
    assert.ok(done.hosts.every((host) => host.state === "confirmed"));
    // Each host was given its system exactly twice: once to fetch, once to activate.
    for (const name of hosts) {
      assert.deepEqual(
        h.pushes.filter((p) => p.host === name).map((p) => p.activate),
        [false, true],
      );
    }
    // A completed rollout is no longer driven.
    assert.deepEqual(await h.store.rollouts.activeRollouts(), []);
  });

  test("a failing canary aborts the rollout and no other host is activated", async () => {
    const h = await harness();
    const hosts = fleet(6);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { canary: count(1), batch: percent(50), maxUnavailable: 3, failureThreshold: percent(50), minExecuted: 3 });
    await h.prefetchAll(id);
    await h.tick();
    assert.deepEqual(activated(h), ["web-1"]);
    await h.report("web-1", HostPhase.HOST_PHASE_ROLLED_BACK, "E_HEALTH_CHECK");
    await h.tick(3);
    const rollout = await h.rollout(id);
    assert.equal(rollout.state, "aborted");
    assert.match(rollout.reason, /the canary failed: web-1 E_HEALTH_CHECK/);
    const canary = await h.rolloutHost(id, "web-1");
    assert.equal(canary.state, "rolled-back");
    assert.equal(canary.errorCode, "E_HEALTH_CHECK");
    assert.deepEqual(activated(h), ["web-1"]);
    for (const name of hosts.slice(1)) {
      assert.equal((await h.rolloutHost(id, name)).state, "prefetched");
      assert.equal((await h.host(name)).desiredActivate, false);
    }
  });

  test("never more than maxUnavailable hosts activate at once", async () => {
    const h = await harness();
    const hosts = fleet(5);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { maxUnavailable: 2 });
    await h.prefetchAll(id);
    assert.equal((await h.rollout(id)).waveCount, 1);

    const activating = async () => (await h.rollout(id)).hosts.filter((host) => host.state === "activating").map((host) => host.name);
    await h.tick(2);
    assert.deepEqual(await activating(), ["web-1", "web-2"]);
    await h.active(["web-1"]);
    await h.tick();
    assert.deepEqual(await activating(), ["web-2", "web-3"]);
    await h.tick(2);
    assert.deepEqual(await activating(), ["web-2", "web-3"], "no slot frees up without a result");
    await h.active(["web-2", "web-3"]);
    await h.tick();
    assert.deepEqual(await activating(), ["web-4", "web-5"]);
    await h.active(["web-4", "web-5"]);
    await h.tick();
    assert.equal((await h.rollout(id)).state, "completed");
    assert.equal(activated(h).length, 5);
  });

  test("a failed host holds a maxUnavailable slot: with none left and nothing in flight the rollout aborts", async () => {
    const h = await harness();
    const hosts = fleet(3);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { maxUnavailable: 1, failureThreshold: count(3) });
    await h.prefetchAll(id);
    await h.tick();
    await h.report("web-1", HostPhase.HOST_PHASE_FAILED, "E_ACTIVATION_FAILED");
    await h.tick();
    const rollout = await h.rollout(id);
    assert.equal(rollout.state, "aborted");
    assert.match(rollout.reason, /use up maxUnavailable \(1\)/);
    assert.deepEqual(activated(h), ["web-1"]);
  });

  test("failureThreshold applies only once minExecuted hosts finished", async () => {
    const h = await harness();
    const hosts = fleet(6);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { maxUnavailable: 6, failureThreshold: count(2), minExecuted: 4 });
    await h.prefetchAll(id);
    await h.tick();
    assert.equal(activated(h).length, 6);

    await h.report("web-1", HostPhase.HOST_PHASE_FAILED, "E_ACTIVATION_FAILED");
    await h.report("web-2", HostPhase.HOST_PHASE_ROLLED_BACK, "E_HEALTH_CHECK");
    await h.tick();
    assert.equal((await h.rollout(id)).state, "running", "2 failed but only 2 executed: below minExecuted");
    await h.active(["web-3"]);
    await h.tick();
    assert.equal((await h.rollout(id)).state, "running", "3 executed: still below minExecuted");
    await h.active(["web-4"]);
    await h.tick();
    const rollout = await h.rollout(id);
    assert.equal(rollout.state, "aborted");
    assert.match(rollout.reason, /2 of 4 finished hosts failed: web-1 E_ACTIVATION_FAILED, web-2 E_HEALTH_CHECK/);
  });

  test("a percentage failure threshold below its count lets the rollout complete", async () => {
    const h = await harness();
    const hosts = fleet(8);
    await h.addHosts(hosts);
    // 25% of 8 = 2 failures abort; 1 does not.
    const id = await h.start(hosts, { maxUnavailable: 8, failureThreshold: percent(25) });
    await h.prefetchAll(id);
    await h.tick();
    await h.report("web-8", HostPhase.HOST_PHASE_FAILED, "E_ACTIVATION_FAILED");
    await h.active(hosts.slice(0, 7));
    await h.tick();
    const rollout = await h.rollout(id);
    assert.equal(rollout.state, "completed");
    assert.match(rollout.reason, /^completed with 1 failed \(failed: web-8 \(E_ACTIVATION_FAILED: .*\)\); 7 confirmed$/);
  });

  test("a gate waits for promote between waves", async () => {
    const h = await harness();
    const hosts = fleet(3);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { canary: count(1), gate: true, maxUnavailable: 2 });
    await h.prefetchAll(id);
    await rejectsCode(h.engine.control(id, "promote", ""), "E_ROLLOUT_STATE");
    await h.settle();
    await h.tick();
    await h.active(["web-1"]);
    await h.tick();
    let rollout = await h.rollout(id);
    assert.equal(rollout.state, "waiting-gate");
    assert.match(rollout.reason, /wave 1 done; promote to start wave 2/);
    h.advance(24 * HOUR);
    await h.tick(3);
    assert.equal((await h.rollout(id)).state, "waiting-gate", "a gate does not open with time");
    assert.deepEqual(activated(h), ["web-1"]);

    rollout = await h.engine.control(id, "promote", "");
    assert.equal(rollout.state, "running");
    assert.equal(rollout.currentWave, 2);
    await h.settle();
    await h.tick();
    assert.deepEqual(activated(h), ["web-1", "web-2", "web-3"]);
    await h.active(["web-2", "web-3"]);
    await h.tick();
    // No gate after the last wave.
    assert.equal((await h.rollout(id)).state, "completed");
  });

  test("a pause between waves waits on the clock", async () => {
    const h = await harness();
    const hosts = fleet(2);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { canary: count(1), pauseMs: 10 * MINUTE });
    await h.prefetchAll(id);
    await h.tick();
    await h.active(["web-1"]);
    const confirmedAt = h.clock.now;
    await h.tick();
    let rollout = await h.rollout(id);
    assert.equal(rollout.state, "running");
    assert.equal(rollout.currentWave, 2);
    assert.equal(rollout.resumeAtMs, confirmedAt + 10 * MINUTE);

    h.advance(10 * MINUTE - 1);
    await h.tick(2);
    assert.deepEqual(activated(h), ["web-1"], "wave 2 waits for the pause to end");
    h.advance(1);
    await h.tick();
    assert.deepEqual(activated(h), ["web-1", "web-2"]);
    await h.active(["web-2"]);
    await h.tick();
    rollout = await h.rollout(id);
    assert.equal(rollout.state, "completed");
  });

  test("operator pause stops new activations, resume goes on", async () => {
    const h = await harness();
    const hosts = fleet(3);
    await h.addHosts(hosts);
    const id = await h.start(hosts);
    await h.prefetchAll(id);
    await h.tick();
    await h.engine.control(id, "pause", "looking at graphs");
    await h.settle();
    assert.equal((await h.rollout(id)).reason, "looking at graphs");
    await h.active(["web-1"]);
    await h.tick(2);
    // The result is still recorded while paused, but nothing new starts.
    assert.equal((await h.rolloutHost(id, "web-1")).state, "confirmed");
    assert.deepEqual(activated(h), ["web-1"]);
    await rejectsCode(h.engine.control(id, "pause", ""), "E_ROLLOUT_STATE");
    await h.engine.control(id, "resume", "");
    await h.settle();
    await h.tick();
    assert.deepEqual(activated(h), ["web-1", "web-2"]);
  });

  test("time spent paused by the operator does not count against the progress deadline", {}, async () => {
    const h = await harness();
    const hosts = fleet(2);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { progressDeadlineMs: 30 * MINUTE });
    await h.prefetchAll(id);
    await h.tick();
    await h.engine.control(id, "pause", "");
    await h.settle();
    h.advance(2 * HOUR);
    await h.engine.control(id, "resume", "");
    await h.settle();
    await h.tick();
    assert.equal((await h.rollout(id)).state, "running", (await h.rollout(id)).reason);
  });

  test("a wave that exceeds its progress deadline aborts the rollout", async () => {
    const h = await harness();
    const hosts = fleet(2);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { progressDeadlineMs: 30 * MINUTE, maxUnavailable: 2 });
    await h.prefetchAll(id);
    await h.tick();
    await h.active(["web-1"]);
    h.advance(30 * MINUTE);
    await h.tick();
    assert.equal((await h.rollout(id)).state, "running", "exactly at the deadline it still waits");
    h.advance(1);
    await h.tick();
    const rollout = await h.rollout(id);
    assert.equal(rollout.state, "aborted");
    assert.match(rollout.reason, /wave 1 exceeded its progress deadline/);
  });

  test("a maintenance window: the host waits while it is closed and activates when it opens", async () => {
    const h = await harness();
    await h.addHosts(["db-1"], ["db"]);
    await h.addHosts(["web-1"], ["web"]);
    // 2024-03-12T00:00Z now; the db window opens at 02:00 UTC for 2 hours.
    await h.store.rollouts.addWindow({ id: "w-db", hostName: "", tag: "db", cron: "0 2 * * *", durationMs: 2 * HOUR, timezone: "UTC" });
    const id = await h.start(["db-1", "web-1"], { maxUnavailable: 2 });
    await h.prefetchAll(id);
    await h.tick();
    assert.deepEqual(await h.states(id), { "db-1": "waiting-window", "web-1": "activating" }, "the window applies to the db tag only");
    assert.deepEqual(activated(h), ["web-1"]);
    await h.active(["web-1"]);

    h.advance(HOUR + 59 * MINUTE);
    await h.tick(2);
    assert.equal((await h.rolloutHost(id, "db-1")).state, "waiting-window");
    assert.equal((await h.host("db-1")).desiredActivate, false);

    h.advance(MINUTE + 30_000);
    await h.tick();
    assert.equal((await h.rolloutHost(id, "db-1")).state, "activating");
    assert.deepEqual(activated(h), ["web-1", "db-1"]);
    await h.active(["db-1"]);
    await h.tick();
    assert.equal((await h.rollout(id)).state, "completed");
  });
});

describe("RolloutEngine abort", () => {
  test("abort with rollbackOnAbort reverts confirmed hosts to their previous system", async () => {
    const h = await harness();
    const hosts = fleet(4);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { canary: count(1), batch: count(1), rollbackOnAbort: true });
    assert.equal((await h.rolloutHost(id, "web-1")).previousSystem, OLD("web-1"));
    await h.prefetchAll(id);
    await h.tick();
    await h.active(["web-1"]);
    await h.tick(2);
    await h.active(["web-2"]);
    await h.tick(2);
    assert.deepEqual(await h.states(id), { "web-1": "confirmed", "web-2": "confirmed", "web-3": "activating", "web-4": "prefetched" });
    await h.active(["web-3"]);
    await h.tick();
    assert.equal((await h.rolloutHost(id, "web-3")).state, "confirmed");
    assert.equal((await h.rollout(id)).currentWave, 4);

    const aborted = await h.engine.control(id, "abort", "bad metrics");
    await h.settle();
    assert.equal(aborted.state, "aborted");
    assert.equal(aborted.reason, "bad metrics");
    for (const name of ["web-1", "web-2", "web-3"]) {
      const record = await h.host(name);
      assert.equal(record.desiredSystem, OLD(name));
      assert.equal(record.desiredActivate, true);
      assert.equal((await h.rolloutHost(id, name)).state, "reverting");
    }
    assert.equal((await h.host("web-4")).desiredSystem, NEW("web-4"));
    assert.equal((await h.host("web-4")).desiredActivate, false);
    assert.deepEqual(
      h.pushes.filter((p) => p.system.endsWith("-old")).map((p) => p.host),
      ["web-1", "web-2", "web-3"],
    );
    // Still driven while hosts revert.
    assert.deepEqual(
      (await h.store.rollouts.activeRollouts()).map((r) => r.id),
      [id],
    );

    await h.active(["web-1", "web-2"]);
    await h.report("web-3", HostPhase.HOST_PHASE_FAILED, "E_ACTIVATION_FAILED");
    await h.tick();
    assert.deepEqual(await h.states(id), { "web-1": "reverted", "web-2": "reverted", "web-3": "failed", "web-4": "prefetched" });
    assert.equal((await h.host("web-1")).currentSystem, OLD("web-1"));
    assert.deepEqual(await h.store.rollouts.activeRollouts(), []);
    await rejectsCode(h.engine.control(id, "abort", ""), "E_ROLLOUT_STATE");
    await h.settle();
  });

  test("abort without rollbackOnAbort leaves confirmed hosts as they are", async () => {
    const h = await harness();
    const hosts = fleet(2);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { canary: count(1) });
    await h.prefetchAll(id);
    await h.tick();
    await h.active(["web-1"]);
    await h.tick();
    await h.engine.control(id, "abort", "");
    await h.settle();
    const rollout = await h.rollout(id);
    assert.equal(rollout.state, "aborted");
    assert.equal(rollout.reason, "aborted by operator");
    assert.equal((await h.host("web-1")).desiredSystem, NEW("web-1"));
    assert.equal(h.pushes.filter((p) => p.system.endsWith("-old")).length, 0);
  });

  test("a host still activating when the rollout aborts gets its outcome recorded and is reverted", {}, async () => {
    const h = await harness();
    const hosts = fleet(3);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { maxUnavailable: 3, failureThreshold: count(1), rollbackOnAbort: true });
    await h.prefetchAll(id);
    await h.tick();
    await h.report("web-1", HostPhase.HOST_PHASE_FAILED, "E_ACTIVATION_FAILED");
    await h.tick();
    assert.equal((await h.rollout(id)).state, "aborted");
    // web-2 and web-3 were in flight and finish afterwards.
    await h.active(["web-2", "web-3"]);
    await h.tick(2);
    assert.notEqual((await h.rolloutHost(id, "web-2")).state, "activating");
    assert.equal((await h.host("web-2")).desiredSystem, OLD("web-2"), "web-2 switched after the abort: it should be rolled back");
  });
});

describe("RolloutEngine and signed intents", () => {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const key = parseSecretKey(
    `ferry-ci-1:${Buffer.concat([privateKey.export({ format: "jwk" }).d, publicKey.export({ format: "jwk" }).x].map((part) => Buffer.from(part as string, "base64url"))).toString("base64")}`,
  );
  const intentFor = (h: Harness, host: string, fields: { path?: string; mode?: IntentMode } = {}): SignedIntent =>
    signIntent(createIntent({ hostName: host, storePath: fields.path ?? NEW(host), mode: fields.mode ?? "default", nowMs: h.clock.now, expiresInMs: HOUR }), [
      key,
    ]);

  test("each host's intent, signed at the start, goes with its prefetch and its activation, never with a revert", async () => {
    const h = await harness();
    const hosts = fleet(2);
    await h.addHosts(hosts);
    const intents = hosts.map((host) => intentFor(h, host));
    // An intent for a host outside the selection is not kept.
    const id = await h.start(hosts, { canary: count(1), batch: count(1), rollbackOnAbort: true }, ActivationMode.ACTIVATION_MODE_UNSPECIFIED, [
      ...intents,
      intentFor(h, "web-9"),
    ]);
    assert.deepEqual(
      (await h.rollout(id)).hosts.map((host) => host.intent),
      intents,
    );
    await h.tick();
    for (const [i, host] of hosts.entries()) assert.deepEqual((await h.host(host)).desiredIntent, intents[i]);
    await h.prefetchAll(id);
    await h.tick();
    assert.equal((await h.host("web-1")).desiredActivate, true);
    assert.deepEqual((await h.host("web-1")).desiredIntent, intents[0]);
    await h.active(["web-1"]);
    await h.tick();

    await h.engine.control(id, "abort", "bad metrics");
    await h.settle();
    const reverted = await h.host("web-1");
    assert.equal(reverted.desiredSystem, OLD("web-1"));
    assert.equal(reverted.desiredIntent, undefined);
  });

  test("an intent that cannot be for its host is refused at the start, and nothing is recorded", async () => {
    const h = await harness();
    await h.addHosts(["web-1"]);
    const cases: [SignedIntent, ErrorCode][] = [
      [intentFor(h, "web-1", { path: OLD("web-1") }), "E_INTENT_PATH_MISMATCH"],
      [intentFor(h, "web-1", { mode: "boot" }), "E_INTENT_MODE_MISMATCH"],
      [{ intent: "ferry-intent-v1;web-1", signatures: [] }, "E_INTENT_MALFORMED"],
    ];
    for (const [intent, code] of cases) {
      await assert.rejects(
        h.start(["web-1"], {}, ActivationMode.ACTIVATION_MODE_UNSPECIFIED, [intent]),
        (error: unknown) => error instanceof FerryError && error.code === code,
      );
    }
    assert.deepEqual(await h.store.rollouts.listRollouts(10), []);
    assert.equal((await h.host("web-1")).desiredSerial, 0);
  });
});

describe("RolloutEngine and changes to the fleet", () => {
  test("a host removed mid-rollout is skipped and the rollout goes on", async () => {
    const h = await harness();
    const hosts = fleet(3);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { canary: count(1), batch: count(1) });
    await h.prefetchAll(id);
    await h.tick();
    await h.store.removeHost("web-1"); // the canary, while activating
    await h.store.removeHost("web-3"); // prefetched, waiting for its wave
    await h.tick();
    let web1 = await h.rolloutHost(id, "web-1");
    assert.equal(web1.state, "skipped");
    assert.equal(web1.errorCode, "E_UNKNOWN_HOST");
    assert.equal((await h.rolloutHost(id, "web-3")).state, "skipped");
    await h.tick(2);
    assert.deepEqual(activated(h), ["web-1", "web-2"]);
    await h.active(["web-2"]);
    await h.tick(3);
    const rollout = await h.rollout(id);
    assert.equal(rollout.state, "completed");
    assert.match(rollout.reason, /^completed with 2 skipped \(skipped: web-1 \(E_UNKNOWN_HOST: host removed during the rollout\), web-3 .*\); 1 confirmed$/);
    web1 = await h.rolloutHost(id, "web-1");
    assert.equal(web1.state, "skipped");
  });

  test("a host added mid-rollout, even with a targeted tag, is left alone", async () => {
    const h = await harness();
    await h.addHosts(["web-1"], ["web"]);
    const id = await h.start(["web-1"]);
    await h.tick();
    await h.addHosts(["web-2"], ["web"]);
    await h.fetched(["web-1"]);
    await h.tick(2);
    await h.active(["web-1"]);
    await h.tick();
    assert.equal((await h.rollout(id)).state, "completed");
    assert.deepEqual(
      (await h.rollout(id)).hosts.map((host) => host.name),
      ["web-1"],
    );
    assert.equal((await h.host("web-2")).desiredSerial, 0);
    assert.ok(h.pushes.every((p) => p.host === "web-1"));
  });

  test("a manual deploy superseding an activating host marks it failed E_SUPERSEDED", async () => {
    const h = await harness();
    const hosts = fleet(2);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { maxUnavailable: 2, failureThreshold: count(2) });
    await h.prefetchAll(id);
    await h.tick();
    const hotfix = storePath("web-1-hotfix");
    await recordDeployment(h.store, "d-manual", [{ hostName: "web-1", storePath: hotfix }], ActivationMode.ACTIVATION_MODE_SWITCH, h.clock.now);
    const manualSerial = (await h.host("web-1")).desiredSerial;
    await h.tick();
    const web1 = await h.rolloutHost(id, "web-1");
    assert.equal(web1.state, "failed");
    assert.equal(web1.errorCode, "E_SUPERSEDED");
    // The manual deploy stays in force.
    const record = await h.host("web-1");
    assert.equal(record.desiredSystem, hotfix);
    assert.equal(record.desiredSerial, manualSerial);
    assert.equal(record.rolloutId, "");
  });

  test("a manual deploy superseding a prefetching host makes it unfetchable E_SUPERSEDED", async () => {
    const h = await harness();
    const hosts = fleet(2);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { skipUnfetchable: true });
    await h.tick();
    await recordDeployment(h.store, "d-manual", [{ hostName: "web-2", storePath: storePath("hotfix") }], ActivationMode.ACTIVATION_MODE_SWITCH, h.clock.now);
    await h.fetched(["web-1"]);
    await h.tick();
    const web2 = await h.rolloutHost(id, "web-2");
    assert.equal(web2.state, "skipped");
    assert.equal(web2.errorCode, "E_SUPERSEDED");
    await h.tick();
    assert.deepEqual(activated(h), ["web-1"]);
    assert.equal((await h.host("web-2")).desiredSystem, storePath("hotfix"));
  });

  test("a manual deploy to a prefetched host waiting for its wave is not overwritten by the rollout", {}, async () => {
    const h = await harness();
    const hosts = fleet(2);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { canary: count(1) });
    await h.prefetchAll(id);
    const hotfix = storePath("web-2-hotfix");
    await recordDeployment(h.store, "d-manual", [{ hostName: "web-2", storePath: hotfix }], ActivationMode.ACTIVATION_MODE_SWITCH, h.clock.now);
    await h.tick();
    await h.active(["web-1"]);
    await h.tick(3);
    assert.equal((await h.host("web-2")).desiredSystem, hotfix);
    assert.equal((await h.rolloutHost(id, "web-2")).errorCode, "E_SUPERSEDED");
  });

  test("a host in an unfinished rollout cannot join a second one", async () => {
    const h = await harness();
    await h.addHosts(["web-1"]);
    await h.start(["web-1"]);
    await rejectsCode(h.start(["web-1"]), "E_ROLLOUT_CONFLICT");
  });
});

describe("RolloutEngine restart", () => {
  test("a new store and engine on the same file resume without re-assigning finished hosts", async () => {
    const h = await harness();
    const hosts = fleet(5);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { canary: count(1), batch: count(2), maxUnavailable: 2 });
    await h.prefetchAll(id);
    await h.tick();
    await h.active(["web-1"]);
    await h.tick(2);
    // Middle of wave 2: web-2 confirmed, web-3 still activating.
    await h.active(["web-2"]);
    await h.tick();
    assert.deepEqual(await h.states(id), { "web-1": "confirmed", "web-2": "confirmed", "web-3": "activating", "web-4": "prefetched", "web-5": "prefetched" });
    const serialsBefore = Object.fromEntries(await Promise.all(hosts.map(async (name) => [name, (await h.host(name)).desiredSerial] as const)));
    const pushesBefore = h.pushes.length;

    await h.restart();
    await h.tick(2);
    // Nothing re-assigned: same serials, no new push, same states.
    for (const name of hosts) assert.equal((await h.host(name)).desiredSerial, serialsBefore[name], name);
    assert.equal(h.pushes.length, pushesBefore);
    assert.deepEqual(await h.states(id), { "web-1": "confirmed", "web-2": "confirmed", "web-3": "activating", "web-4": "prefetched", "web-5": "prefetched" });

    // The agent's result, recorded while the controller was down, is not lost.
    await h.active(["web-3"]);
    await h.restart();
    await h.tick();
    assert.equal((await h.rolloutHost(id, "web-3")).state, "confirmed");
    await h.tick();
    assert.deepEqual(
      h.pushes.slice(pushesBefore).map((p) => [p.host, p.activate]),
      [
        ["web-4", true],
        ["web-5", true],
      ],
    );
    await h.active(["web-4", "web-5"]);
    await h.tick();
    const rollout = await h.rollout(id);
    assert.equal(rollout.state, "completed");
    for (const name of ["web-1", "web-2", "web-3"]) assert.equal((await h.host(name)).desiredSerial, serialsBefore[name], name);
  });

  test("a restart during prefetch does not assign prefetch twice", async () => {
    const h = await harness();
    const hosts = fleet(2);
    await h.addHosts(hosts);
    const id = await h.start(hosts);
    await h.tick();
    const serial = (await h.host("web-1")).desiredSerial;
    await h.restart();
    await h.tick();
    assert.equal((await h.host("web-1")).desiredSerial, serial);
    assert.equal(h.pushes.length, 2);
    await h.fetched(hosts);
    await h.tick();
    assert.equal((await h.rollout(id)).state, "running");
  });
});

describe("RolloutEngine modes", () => {
  const { ACTIVATION_MODE_UNSPECIFIED: HOST_DEFAULT, ACTIVATION_MODE_BOOT: BOOT, ACTIVATION_MODE_TRIAL: TRIAL } = ActivationMode;

  test("a rollout gives every host its own mode: an earlier `deploy --mode boot` does not stick", async () => {
    const h = await harness();
    const hosts = fleet(2);
    await h.addHosts(hosts);
    await recordDeployment(h.store, "d-manual", [{ hostName: "web-1", storePath: storePath("web-1-manual") }], BOOT, h.clock.now);
    await h.report("web-1", HostPhase.HOST_PHASE_BOOT_PENDING);
    const id = await h.start(hosts, { maxUnavailable: 2 });
    await h.prefetchAll(id);
    await h.tick();
    assert.deepEqual(
      h.pushes.filter((p) => p.activate).map((p) => [p.host, p.mode]),
      [
        ["web-1", HOST_DEFAULT],
        ["web-2", HOST_DEFAULT],
      ],
    );
    assert.equal((await h.host("web-1")).activationMode, HOST_DEFAULT);

    const named = await harness();
    await named.addHosts(hosts);
    const trial = await named.start(hosts, { maxUnavailable: 2 }, TRIAL);
    await named.prefetchAll(trial);
    await named.tick();
    assert.ok(named.pushes.length === 4 && named.pushes.every((p) => p.mode === TRIAL), JSON.stringify(named.pushes));
    assert.equal(toRolloutMessage(await named.rollout(trial)).mode, TRIAL);
  });

  test("a boot-mode canary is not confirmed until it runs the new system, and the next wave waits for it", async () => {
    const h = await harness();
    const hosts = fleet(3);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { canary: count(1), maxUnavailable: 2 }, BOOT);
    await h.prefetchAll(id);
    await h.tick();
    assert.deepEqual(activated(h), ["web-1"]);
    await h.report("web-1", HostPhase.HOST_PHASE_BOOT_PENDING);
    await h.tick(3);
    assert.equal((await h.rolloutHost(id, "web-1")).state, "boot-pending");
    assert.equal((await h.rollout(id)).currentWave, 1);
    assert.deepEqual(activated(h), ["web-1"], "no other host activates while the canary still runs the old system");

    await h.booted("web-1");
    await h.tick();
    assert.equal((await h.rolloutHost(id, "web-1")).state, "confirmed");
    await h.tick();
    assert.deepEqual(activated(h), ["web-1", "web-2", "web-3"]);
  });

  test("a host reporting active while running another system is not confirmed", async () => {
    const h = await harness();
    await h.addHosts(["web-1"]);
    const id = await h.start(["web-1"]);
    await h.prefetchAll(id);
    await h.tick();
    const record = await h.host("web-1");
    await h.store.recordReport("web-1", { appliedSerial: record.desiredSerial, phase: HostPhase.HOST_PHASE_ACTIVE });
    await h.tick(2);
    assert.equal((await h.rolloutHost(id, "web-1")).state, "boot-pending");
    assert.equal((await h.rollout(id)).state, "running");
  });

  test("a boot-pending host that does not reboot before the progress deadline aborts the rollout, naming it", async () => {
    const h = await harness();
    const hosts = fleet(2);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { canary: count(1), progressDeadlineMs: 30 * MINUTE }, BOOT);
    await h.prefetchAll(id);
    await h.tick();
    await h.report("web-1", HostPhase.HOST_PHASE_BOOT_PENDING);
    h.advance(30 * MINUTE + 1);
    await h.tick();
    const rollout = await h.rollout(id);
    assert.equal(rollout.state, "aborted");
    assert.match(rollout.reason, /wave 1 exceeded its progress deadline; installed for the next boot but not running it yet: web-1/);
    assert.deepEqual(activated(h), ["web-1"]);
  });

  test("abort with rollbackOnAbort puts the previous system back as the boot default of a boot-pending host", async () => {
    const h = await harness();
    const hosts = fleet(2);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { canary: count(1), rollbackOnAbort: true }, BOOT);
    await h.prefetchAll(id);
    await h.tick();
    await h.report("web-1", HostPhase.HOST_PHASE_BOOT_PENDING);
    await h.tick();
    await h.engine.control(id, "abort", "wrong kernel");
    await h.settle();
    assert.equal((await h.rolloutHost(id, "web-1")).state, "reverting");
    assert.deepEqual([h.pushes.at(-1)?.system, h.pushes.at(-1)?.mode], [OLD("web-1"), BOOT]);
    await h.report("web-1", HostPhase.HOST_PHASE_BOOT_PENDING);
    await h.tick();
    const web1 = await h.rolloutHost(id, "web-1");
    assert.equal(web1.state, "reverted");
    assert.match(web1.errorMessage, /boot default again/);
  });
});

describe("RolloutEngine outcome", () => {
  test("a rollout whose host was superseded completes with 1 skipped, naming the host and why", async () => {
    const h = await harness();
    const hosts = fleet(2);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { canary: count(1) });
    await h.prefetchAll(id);
    await recordDeployment(
      h.store,
      "d-manual",
      [{ hostName: "web-2", storePath: storePath("web-2-hotfix") }],
      ActivationMode.ACTIVATION_MODE_SWITCH,
      h.clock.now,
    );
    await h.tick();
    await h.active(["web-1"]);
    await h.tick(3);
    const rollout = await h.rollout(id);
    assert.equal(rollout.state, "completed");
    assert.equal(
      rollout.reason,
      "completed with 1 skipped (skipped: web-2 (E_SUPERSEDED: another deployment replaced this host's desired system)); 1 confirmed",
    );
    assert.equal(rolloutOutcome(rollout), "some-skipped");
    assert.equal(toRolloutMessage(rollout).outcome, "some-skipped");
  });

  test("every host confirmed, a failed host under the threshold, an abort: each has its own outcome", async () => {
    const h = await harness();
    const hosts = fleet(2);
    await h.addHosts(hosts);
    const clean = await h.start(hosts, { maxUnavailable: 2 });
    await h.prefetchAll(clean);
    await h.tick();
    await h.active(hosts);
    await h.tick();
    assert.equal((await h.rollout(clean)).reason, "all 2 host(s) confirmed");
    assert.equal(toRolloutMessage(await h.rollout(clean)).outcome, "all-confirmed");

    const failing = await h.start(hosts, { maxUnavailable: 2, failureThreshold: count(2) });
    await h.prefetchAll(failing);
    await h.tick();
    await h.active(["web-1"]);
    await h.report("web-2", HostPhase.HOST_PHASE_ROLLED_BACK, "E_HEALTH_CHECK_FAILED");
    await h.tick();
    const failed = await h.rollout(failing);
    assert.equal(failed.state, "completed");
    assert.match(failed.reason, /^completed with 1 failed \(failed: web-2 \(E_HEALTH_CHECK_FAILED: simulated E_HEALTH_CHECK_FAILED\)\); 1 confirmed$/);
    assert.equal(rolloutOutcome(failed), "some-failed");

    const aborted = await h.start(hosts);
    await h.engine.control(aborted, "abort", "");
    await h.settle();
    assert.equal(rolloutOutcome(await h.rollout(aborted)), "aborted");
    assert.equal(rolloutOutcome({ state: "running", hosts: [] }), "");
  });
});

describe("Manual deploys and maintenance windows", () => {
  const OPENS = Date.parse("2024-03-12T02:00:00Z");
  const deployBoth = (h: Harness, ignoreWindows: boolean) =>
    recordDeploy(
      h.store,
      new DesiredState({
        store: h.store,
        cache,
        hub: { pushDesired: () => undefined },
        log: silentLogger(),
        now: () => h.clock.now,
        onChanged: () => undefined,
      }),
      ["db-1", "web-1"].map((hostName) => ({ hostName, storePath: NEW(hostName) })),
      { mode: ActivationMode.ACTIVATION_MODE_UNSPECIFIED, ignoreWindows },
      h.clock.now,
    );

  async function windowed(): Promise<Harness> {
    const h = await harness();
    await h.addHosts(["db-1"], ["prod"]);
    await h.addHosts(["web-1"]);
    // 2024-03-12T00:00Z now; the prod window opens at 02:00 UTC for 2 hours.
    await h.store.rollouts.addWindow({ id: "w-prod", hostName: "", tag: "prod", cron: "0 2 * * *", durationMs: 2 * HOUR, timezone: "UTC" });
    return h;
  }

  test("a host whose window is closed fetches now and activates when its window opens", async () => {
    const h = await windowed();
    const deploy = await deployBoth(h, false);
    assert.deepEqual(deploy.held, [{ hostName: "db-1", opensAtMs: OPENS }]);
    assert.deepEqual(deploy.windowsIgnored, []);
    assert.deepEqual(
      deploy.records.map((r) => [r.name, r.desiredActivate, r.heldForWindow]),
      [
        ["db-1", false, true],
        ["web-1", true, false],
      ],
    );
    await h.fetched(["db-1"]);
    await h.tick();
    h.advance(HOUR);
    await h.tick();
    assert.deepEqual(h.pushes, [], "nothing activates while the window is closed");

    h.advance(HOUR + MINUTE);
    h.offline.add("db-1");
    await h.tick();
    assert.deepEqual(h.pushes, [], "an offline host stays held: it must not activate whenever it reconnects");
    h.offline.delete("db-1");
    await h.tick(2);
    assert.deepEqual(h.pushes, [{ host: "db-1", serial: 2, system: NEW("db-1"), activate: true, mode: ActivationMode.ACTIVATION_MODE_UNSPECIFIED }]);
    const record = await h.host("db-1");
    assert.deepEqual([record.heldForWindow, record.desiredActivate, record.deploymentId], [false, true, deploy.deploymentId]);
  });

  test("ignoring windows activates at once, and the result names the host", async () => {
    const h = await windowed();
    const deploy = await deployBoth(h, true);
    assert.deepEqual(deploy.held, []);
    assert.deepEqual(deploy.windowsIgnored, [{ hostName: "db-1", opensAtMs: OPENS }]);
    assert.ok(deploy.records.every((r) => r.desiredActivate && !r.heldForWindow));
  });

  test("a rollout takes over a held host: the hold ends and the window does not activate it again", async () => {
    const h = await windowed();
    await deployBoth(h, false);
    const id = await h.start(["db-1"]);
    await h.tick();
    assert.equal((await h.host("db-1")).heldForWindow, false);
    h.advance(2 * HOUR + MINUTE);
    await h.tick();
    assert.deepEqual(
      h.pushes.map((p) => [p.host, p.activate]),
      [["db-1", false]],
      "only the rollout's prefetch",
    );
    assert.equal((await h.host("db-1")).rolloutId, id);
  });
});

describe("RolloutEngine: health checks failing before and after the switch", () => {
  const NGINX = "systemd:nginx.service";

  test("a canary confirmed while every check failed before and after pauses the rollout, saying why", async () => {
    const h = await harness();
    const hosts = fleet(3);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { canary: count(1), maxUnavailable: 2 });
    await h.prefetchAll(id);
    await h.tick();
    assert.deepEqual(activated(h), ["web-1"]);
    await h.confirmedWithFailingChecks("web-1", [NGINX], 1);
    await h.tick();

    const rollout = await h.rollout(id);
    assert.equal(rollout.state, "paused");
    assert.match(rollout.reason, /the canary proves nothing about this release \(web-1: none of its 1 health check\(s\) passed/);
    assert.match(rollout.reason, /systemd:nginx\.service/);
    assert.match(rollout.reason, /--accept-failing-checks/);
    const canary = await h.rolloutHost(id, "web-1");
    assert.deepEqual([canary.state, canary.errorCode], ["confirmed", "E_CHECKS_UNPROVEN"]);
    // Paused: the next wave is not started.
    h.advance(MINUTE);
    await h.tick(2);
    assert.deepEqual(activated(h), ["web-1"]);

    // A plain resume does not accept it: the rollout stays paused and says how to go on.
    await rejectsCode(h.engine.control(id, "resume", ""), "E_CHECKS_UNPROVEN");
    await h.settle();
    assert.equal((await h.rollout(id)).state, "paused");

    await h.engine.control(id, "resume", "", { acceptFailingChecks: true });
    await h.settle();
    await h.tick(2);
    const resumed = await h.rollout(id);
    assert.equal(resumed.policy.acceptFailingChecks, true, "the acceptance is part of the stored policy");
    assert.equal(resumed.state, "running");
    assert.deepEqual(activated(h).sort(), ["web-1", "web-2", "web-3"]);
  });

  test("the acceptance survives a controller restart", async () => {
    const h = await harness();
    const hosts = fleet(2);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { canary: count(1) });
    await h.prefetchAll(id);
    await h.tick();
    await h.confirmedWithFailingChecks("web-1", [NGINX], 1);
    await h.tick();
    await h.engine.control(id, "resume", "", { acceptFailingChecks: true });
    await h.restart();
    await h.tick(2);
    assert.equal((await h.rollout(id)).state, "running");
    assert.deepEqual(activated(h), ["web-1", "web-2"]);
  });

  test("started with acceptFailingChecks, such a canary counts as healthy; the host still carries the evidence", async () => {
    const h = await harness();
    const hosts = fleet(2);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { canary: count(1), acceptFailingChecks: true });
    await h.prefetchAll(id);
    await h.tick();
    await h.confirmedWithFailingChecks("web-1", [NGINX], 1);
    await h.tick(2);
    assert.equal((await h.rollout(id)).state, "running");
    assert.deepEqual(activated(h), ["web-1", "web-2"]);
    assert.equal((await h.rolloutHost(id, "web-1")).errorCode, "E_CHECKS_UNPROVEN");
  });

  test("a canary with some checks passing is healthy; the failing ones are recorded on the host (E_CHECKS_FAILING)", async () => {
    const h = await harness();
    const hosts = fleet(2);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { canary: count(1) });
    await h.prefetchAll(id);
    await h.tick();
    await h.confirmedWithFailingChecks("web-1", [NGINX], 3);
    await h.tick(2);
    assert.equal((await h.rollout(id)).state, "running");
    assert.deepEqual(activated(h), ["web-1", "web-2"]);
    const canary = await h.rolloutHost(id, "web-1");
    assert.deepEqual([canary.state, canary.errorCode], ["confirmed", "E_CHECKS_FAILING"]);
    assert.match(canary.errorMessage, /1 of 3 health checks failed before the switch and still fail \(systemd:nginx\.service\)/);
    await h.active(["web-2"]);
    await h.tick(2);
    const done = await h.rollout(id);
    assert.equal(done.state, "completed");
    assert.equal((await h.rolloutHost(id, "web-2")).errorCode, "", "a host whose checks all passed carries nothing");
  });

  test("hosts outside a canary wave are reported, never paused on", async () => {
    const h = await harness();
    const hosts = fleet(2);
    await h.addHosts(hosts);
    const id = await h.start(hosts, { maxUnavailable: 2 });
    await h.prefetchAll(id);
    await h.tick();
    await h.confirmedWithFailingChecks("web-1", [NGINX], 1);
    await h.active(["web-2"]);
    await h.tick(2);
    assert.equal((await h.rollout(id)).state, "completed");
    assert.equal((await h.rolloutHost(id, "web-1")).errorCode, "E_CHECKS_UNPROVEN");
  });
});
