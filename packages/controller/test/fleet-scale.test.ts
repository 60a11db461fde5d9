// What keeps the controller's work proportional to what changed: one
// desired-state write per assignment, reports in group commits, heartbeats in
// memory, and a rollout engine that reads only the hosts whose record changed.
// Each test counts the work (store calls, steps) rather than timing it.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FerryError, hashToken, silentLogger } from "@ferry/core";
import { ActivationMode, HostPhase, type StartRolloutRequest } from "@ferry/protocol";
import type { BinaryCache } from "../src/cache/binary-cache.js";
import { DesiredState } from "../src/desired/desired-state.js";
import { ReportWriter } from "../src/hub/report-writer.js";
import { RolloutEngine } from "../src/rollouts/engine.js";
import { planWaves } from "../src/rollouts/plan.js";
import { planRollout } from "../src/rollouts/start.js";
import { StepScheduler } from "../src/rollouts/step-scheduler.js";
import { openSqliteStore } from "../src/store/open-store.js";
import type { SqlStateStore } from "../src/store/sql-store.js";
import type { HostReportEntry } from "../src/store/state-store.js";

const root = mkdtempSync(join(tmpdir(), "ferry-fleet-scale-"));
const stores: SqlStateStore[] = [];
after(async () => {
  for (const store of stores) await store.close().catch(() => undefined);
  rmSync(root, { recursive: true, force: true });
});

let counter = 0;
async function openStore(): Promise<SqlStateStore> {
  const store = await openSqliteStore(join(root, `state-${++counter}.sqlite`));
  stores.push(store);
  return store;
}

const OLD = "/nix/store/pz5wv3mkbf4bwihvsz8yqydfwb9bfhy5-nixos-system-old";
const NEW = "/nix/store/1zy01hjzwvvia6h9dq5xar88v77fgh9x-nixos-system-new";
const cache = { closureInfos: async () => new Map(), withoutCollection: <T>(work: () => Promise<T>) => work() } as unknown as BinaryCache;
const names = (count: number) => Array.from({ length: count }, (_, i) => `web-${String(i).padStart(4, "0")}`);

async function addHosts(store: SqlStateStore, hosts: readonly string[]): Promise<void> {
  for (const name of hosts) {
    await store.addHost(name, hashToken(name), [], 0);
    await store.recordReport(name, { currentSystem: OLD, phase: HostPhase.HOST_PHASE_ACTIVE });
  }
}

describe("one write path for desired state", () => {
  test("a rollout step writes the hosts' desired systems and their rollout rows in one transaction, with the new serials", async () => {
    const store = await openStore();
    const hosts = names(3);
    await addHosts(store, hosts);
    const plan = await planRollout(store, cache, rolloutRequest(hosts), 1);
    await store.rollouts.createRollout(plan);
    const records = await store.assignDesired({
      deploymentId: plan.id,
      mode: ActivationMode.ACTIVATION_MODE_UNSPECIFIED,
      nowMs: 2,
      requestedBy: "test",
      targets: hosts.map((hostName) => ({ hostName, storePath: NEW, activate: false, heldForWindow: false, intent: undefined })),
      rollout: { id: plan.id, state: "prefetching" },
    });
    assert.deepEqual(
      records.map((record) => [record.name, record.desiredSerial, record.desiredActivate, record.rolloutId]),
      hosts.map((name) => [name, 1, false, plan.id]),
    );
    const rows = (await store.rollouts.getRollout(plan.id)).hosts;
    assert.deepEqual(
      rows.map((row) => [row.name, row.state, row.serial]),
      hosts.map((name) => [name, "prefetching", 1]),
    );
  });

  test("one unknown host and nothing is written, for any host", async () => {
    const store = await openStore();
    await addHosts(store, ["a"]);
    await assert.rejects(
      store.assignDesired({
        deploymentId: "d1",
        mode: ActivationMode.ACTIVATION_MODE_UNSPECIFIED,
        nowMs: 1,
        requestedBy: "",
        targets: ["a", "ghost"].map((hostName) => ({ hostName, storePath: NEW, activate: true, heldForWindow: false, intent: undefined })),
      }),
      (error: unknown) => error instanceof FerryError && error.code === "E_UNKNOWN_HOST",
    );
    assert.equal((await store.getHost("a"))?.desiredSerial, 0);
  });

  test("DesiredState.assign pushes each host once and announces the assignment in one event", async () => {
    const store = await openStore();
    const hosts = names(50);
    await addHosts(store, hosts);
    const pushed: string[] = [];
    const events: (readonly string[])[] = [];
    const desired = new DesiredState({
      store,
      cache,
      hub: { pushDesired: (record) => pushed.push(record.name) },
      log: silentLogger(),
      now: () => 5,
      onChanged: (changed) => events.push(changed),
    });
    await desired.assign({
      deploymentId: "d1",
      mode: ActivationMode.ACTIVATION_MODE_UNSPECIFIED,
      requestedBy: "test",
      targets: hosts.map((hostName) => ({ hostName, storePath: NEW, activate: true, heldForWindow: false, intent: undefined })),
      closures: { allowUnsigned: true },
    });
    assert.deepEqual(pushed, hosts);
    assert.deepEqual(events, [hosts]);
  });
});

describe("agents' reports", () => {
  class CountingStore {
    batches: HostReportEntry[][] = [];
    fail = false;
    async recordReports(entries: readonly HostReportEntry[]): Promise<void> {
      if (this.fail) throw new FerryError("E_NO_SPACE", "disk full");
      this.batches.push([...entries]);
    }
  }

  test("reports that arrive together share one transaction, and each sender waits for it", async () => {
    const store = new CountingStore();
    const writer = new ReportWriter(store);
    await Promise.all(names(1000).map((name) => writer.write(name, { phase: HostPhase.HOST_PHASE_ACTIVE, lastSeenMs: 1 })));
    assert.equal(store.batches.length, 1);
    assert.equal(store.batches[0]?.length, 1000);
    await writer.close();
  });

  test("a failed transaction fails every report in it", async () => {
    const store = new CountingStore();
    store.fail = true;
    const writer = new ReportWriter(store);
    const results = await Promise.allSettled([writer.write("a", { phase: 1 }), writer.write("b", { phase: 1 })]);
    assert.deepEqual(
      results.map((result) => result.status),
      ["rejected", "rejected"],
    );
    store.fail = false;
    await writer.close();
  });

  test("heartbeats stay in memory, are visible at once, and are written in one batch (at the latest on close)", async () => {
    const store = new CountingStore();
    const writer = new ReportWriter(store);
    for (let beat = 1; beat <= 10; beat++) for (const name of names(100)) writer.seen(name, beat * 1000);
    assert.equal(store.batches.length, 0);
    assert.equal(writer.lastSeenMs("web-0042"), 10_000);
    await writer.close();
    assert.equal(store.batches.length, 1);
    assert.equal(store.batches[0]?.length, 100);
    assert.deepEqual(store.batches[0]?.[0]?.report, { lastSeenMs: 10_000 });
  });

  test("recordReports drops reports of hosts removed meanwhile and appends their events in the same transaction", async () => {
    const store = await openStore();
    await addHosts(store, ["a"]);
    await store.recordReports([
      { name: "a", report: { phase: HostPhase.HOST_PHASE_FAILED }, event: { atMs: 1, kind: "activation-failed", data: { serial: 1 } } },
      { name: "gone", report: { phase: HostPhase.HOST_PHASE_ACTIVE }, event: { atMs: 1, kind: "activation-succeeded", data: {} } },
    ]);
    assert.equal((await store.getHost("a"))?.phase, HostPhase.HOST_PHASE_FAILED);
    assert.deepEqual(
      (await store.listEvents("a", 10)).map((event) => event.kind),
      ["activation-failed"],
    );
    assert.deepEqual(await store.listEvents("gone", 10), []);
  });
});

describe("the rollout engine's work follows what changed", () => {
  test("a step reads only the hosts whose record changed, however large the rollout", async () => {
    const store = await openStore();
    const hosts = names(300);
    await addHosts(store, hosts);
    const reads: string[][] = [];
    const findHosts = store.findHosts.bind(store);
    store.findHosts = async (wanted) => {
      reads.push([...wanted]);
      return findHosts(wanted);
    };
    const desired = new DesiredState({ store, cache, hub: { pushDesired: () => undefined }, log: silentLogger(), now: () => 10, onChanged: () => undefined });
    const engine = new RolloutEngine({ store, desired, hub: { isOnline: () => true }, log: silentLogger(), now: () => 10, onRolloutChanged: () => undefined });
    const plan = await planRollout(store, cache, rolloutRequest(hosts), 10);
    reads.length = 0;
    await engine.begin(plan);
    await engine.runStep();
    // Just adopted: every host is read once, and assigned its prefetch (the write returns the rows it wrote, nothing is read again).
    assert.equal(reads.flat().filter((name) => name === "web-0123").length, 2);
    reads.length = 0;
    await engine.runStep();
    assert.equal(reads.flat().length, 0, "nothing changed, nothing read");
    const record = await store.getHost("web-0007");
    await store.recordReport("web-0007", { appliedSerial: record?.desiredSerial ?? 0, phase: HostPhase.HOST_PHASE_FETCHED });
    engine.markChanged(["web-0007", "not-in-any-rollout"]);
    await engine.runStep();
    assert.deepEqual(reads, [["web-0007"]]);
    assert.equal((await store.rollouts.getRollout(plan.id)).hosts.find((host) => host.name === "web-0007")?.state, "prefetched");
    await engine.stop();
  });

  test("a burst of events is one step, and an event during a step is exactly one more", async () => {
    let steps = 0;
    let release: () => void = () => undefined;
    const scheduler = new StepScheduler(
      async () => {
        steps += 1;
        if (steps === 1) await new Promise<void>((resolve) => (release = resolve));
      },
      (error) => assert.fail(String(error)),
      5,
    );
    for (let i = 0; i < 1000; i++) scheduler.request();
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(steps, 1);
    for (let i = 0; i < 1000; i++) scheduler.request();
    release();
    await scheduler.idle();
    assert.equal(steps, 2);
    await scheduler.stop();
  });

  test("waves for 10,000 hosts, one per wave after a canary of 2, cover each host once", () => {
    const hosts = names(10_000);
    const waves = planWaves(hosts, { canary: { value: 2, percent: false }, batch: { value: 1, percent: false } });
    assert.equal(waves.length, 9_999);
    assert.deepEqual(waves[0], hosts.slice(0, 2));
    assert.deepEqual(waves.flat(), hosts);
  });
});

function rolloutRequest(hosts: readonly string[]): StartRolloutRequest {
  return {
    allowUnsigned: true,
    intents: [],
    targets: hosts.map((hostName) => ({ hostName, storePath: NEW, intent: undefined })),
    hostNames: [],
    tags: [],
    manifest: {},
    policy: undefined,
    environment: "",
    afterEnvironment: "",
    requestedBy: "test",
    mode: ActivationMode.ACTIVATION_MODE_UNSPECIFIED,
  };
}
