// The rest of the store contract: rollouts, tokens, the audit trail, the
// bundle ledger, writes of many hosts at once, and the change clock replicas
// read. Run against both backends with storeContract.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { FerryError, hashToken, type LedgerEntry } from "@ferry/core";
import { ActivationMode, HostPhase } from "@ferry/protocol";
import type { StateStore } from "../src/store/state-store.js";
import type { RolloutRecord } from "../src/store/rollout-records.js";
import { DEFAULT_POLICY } from "../src/rollouts/default-policy.js";
import { recordDeployment } from "./record-deployment.js";
import { SYS_A, SYS_B, rejectsCode, type ContractBackend } from "./store-contract.js";

export const ledgerEntry = (sequence: number, site?: string): LedgerEntry => ({
  sequence,
  manifestSha256: "00",
  createdAt: "2026-11-22T00:00:00Z",
  importedAtMs: sequence,
  signer: "site-key",
  hosts: { "web-1": SYS_A },
  ...(site === undefined ? {} : { site }),
});

const replayed = (error: unknown) => error instanceof FerryError && error.code === "E_BUNDLE_REPLAYED";

function rollout(id: string, hosts: string[]): RolloutRecord {
  return {
    id,
    state: "running",
    environment: "prod",
    manifestDigest: `digest-${id}`,
    policy: DEFAULT_POLICY,
    mode: ActivationMode.ACTIVATION_MODE_UNSPECIFIED,
    waveCount: 2,
    currentWave: 0,
    reason: "",
    requestedBy: "ci",
    createdAtMs: 10,
    updatedAtMs: 10,
    phaseStartedAtMs: 10,
    resumeAtMs: 0,
    hosts: hosts.map((name, index) => ({
      name,
      storePath: SYS_B,
      wave: index === 0 ? 0 : 1,
      state: "pending",
      serial: 0,
      errorCode: "",
      errorMessage: "",
      previousSystem: SYS_A,
      updatedAtMs: 10,
      intent: undefined,
    })),
  };
}

const names = (count: number) => Array.from({ length: count }, (_, i) => `host-${String(i).padStart(5, "0")}`);

export function recordsContract(backend: ContractBackend): void {
  const stores: StateStore[] = [];
  after(async () => {
    for (const store of stores) await store.close().catch(() => undefined);
  });
  const open = async (file?: string) => {
    const opened = await backend.open(file);
    stores.push(opened.store);
    return opened;
  };

  describe(`${backend.name}: many hosts in one write`, () => {
    test("2,500 hosts (more than one statement's worth): one unknown name writes nothing; without it every host gets serial 1 and one event", async () => {
      const { store } = await open();
      const hosts = names(2500);
      for (const name of hosts) await store.addHost(name, hashToken(name), [], 1);
      const targets = (list: string[]) => list.map((hostName, i) => ({ hostName, storePath: i % 2 === 0 ? SYS_A : SYS_B }));
      await rejectsCode(recordDeployment(store, "d0", targets([...hosts, "missing"]), ActivationMode.ACTIVATION_MODE_SWITCH, 2), "E_UNKNOWN_HOST");
      assert.equal((await store.listHosts()).filter((host) => host.desiredSerial !== 0).length, 0, "nothing written");
      const assigned = await recordDeployment(store, "d1", targets(hosts), ActivationMode.ACTIVATION_MODE_SWITCH, 3);
      assert.deepEqual(
        assigned.map((host) => host.name),
        hosts,
        "records come back in the order asked",
      );
      assert.ok(assigned.every((host, i) => host.desiredSerial === 1 && host.desiredSystem === (i % 2 === 0 ? SYS_A : SYS_B)));
      assert.deepEqual(
        (await store.listEvents("host-02499", 10)).map((event) => [event.kind, event.data["serial"]]),
        [["desired-assigned", 1]],
      );
    });

    test("a batch of reports keeps each host's reports in order, and drops those of unknown hosts", async () => {
      const { store } = await open();
      const hosts = names(1200);
      for (const name of hosts) await store.addHost(name, hashToken(name), [], 1);
      await store.recordReports([
        ...hosts.map((name) => ({ name, report: { phase: HostPhase.HOST_PHASE_FETCHING } })),
        { name: "gone", report: { phase: HostPhase.HOST_PHASE_FAILED }, event: { atMs: 1, kind: "x", data: {} } },
        ...hosts.map((name) => ({
          name,
          report: { phase: HostPhase.HOST_PHASE_ACTIVE, currentSystem: SYS_A },
          event: { atMs: 2, kind: "activation-succeeded", data: {} },
        })),
        { name: hosts[7] as string, report: { currentSystem: SYS_B } },
      ]);
      const all = await store.listHosts();
      assert.ok(all.every((host) => host.phase === HostPhase.HOST_PHASE_ACTIVE));
      assert.deepEqual([all[7]?.currentSystem, all[7]?.previousSystem, all[8]?.currentSystem, all[8]?.previousSystem], [SYS_B, SYS_A, SYS_A, ""]);
      assert.deepEqual(await store.listEvents("gone", 10), []);
      assert.equal((await store.listEvents(hosts[0] as string, 10)).length, 1);
    });

    test("a batch of last-seen times (heartbeats written together) gives each host its own, next to other reports", async () => {
      const { store } = await open();
      const hosts = names(1200);
      for (const name of hosts) await store.addHost(name, hashToken(name), [], 1);
      await store.recordReports([
        ...hosts.map((name, i) => ({ name, report: { lastSeenMs: 1_800_000_000_000 + i } })),
        { name: "gone", report: { lastSeenMs: 5 } },
        { name: hosts[3] as string, report: { phase: HostPhase.HOST_PHASE_FETCHING } },
      ]);
      const all = await store.listHosts();
      assert.ok(all.every((host, i) => host.lastSeenMs === 1_800_000_000_000 + i));
      assert.equal(all[3]?.phase, HostPhase.HOST_PHASE_FETCHING);
    });

    test("each host keeps only its newest events, however many arrive in one batch", async () => {
      const { store } = await open();
      await store.addHost("a", hashToken("a"), [], 1);
      await store.addHost("b", hashToken("b"), [], 1);
      const flood = Array.from({ length: 1100 }, (_, i) => ({ name: "a", report: {}, event: { atMs: i, kind: "result", data: { i } } }));
      await store.recordReports([...flood, { name: "b", report: {}, event: { atMs: 5, kind: "result", data: { i: -1 } } }]);
      const events = await store.listEvents("a", 5000);
      assert.equal(events.length, 1000);
      assert.deepEqual([events[0]?.data["i"], events.at(-1)?.data["i"]], [100, 1099]);
      assert.equal((await store.listEvents("b", 10)).length, 1);
    });
  });

  describe(`${backend.name}: the change clock`, () => {
    test("changesSince lists the hosts a deploy or a report changed after a value, and a second store on the database sees them", async () => {
      const { store, file } = await open();
      const { store: replica } = await open(file);
      for (const name of ["a", "b", "c"]) await store.addHost(name, hashToken(name), [], 1);
      const start = await replica.changesSince(0);
      assert.deepEqual(start.hosts, []);
      await recordDeployment(
        store,
        "d1",
        [
          { hostName: "a", storePath: SYS_A },
          { hostName: "b", storePath: SYS_A },
        ],
        ActivationMode.ACTIVATION_MODE_SWITCH,
        2,
      );
      const first = await replica.changesSince(start.seq);
      assert.deepEqual(first.hosts.map((host) => [host.name, host.desiredSerial]).sort(), [
        ["a", 1],
        ["b", 1],
      ]);
      assert.ok(first.seq > start.seq);
      await store.recordReports([{ name: "b", report: { phase: HostPhase.HOST_PHASE_FETCHING } }]);
      const second = await replica.changesSince(first.seq);
      assert.deepEqual(
        second.hosts.map((host) => [host.name, host.phase]),
        [["b", HostPhase.HOST_PHASE_FETCHING]],
      );
      assert.deepEqual((await replica.changesSince(second.seq)).hosts, [], "nothing new");
    });
  });

  describe(`${backend.name}: rollouts and maintenance windows`, () => {
    test("a rollout round-trips; a step's host changes are written together; finished rollouts leave the active list", async () => {
      const { store } = await open();
      await store.rollouts.createRollout(rollout("r1", ["web-1", "web-2", "web-3"]));
      const read = await store.rollouts.getRollout("r1");
      assert.deepEqual(read, rollout("r1", ["web-1", "web-2", "web-3"]));
      await store.rollouts.updateRolloutHosts(
        "r1",
        [
          { name: "web-2", patch: { state: "activating" } },
          { name: "web-3", patch: { state: "activating" } },
          { name: "web-2", patch: { state: "failed", errorCode: "E_X", errorMessage: "boom" } },
        ],
        20,
      );
      const updated = await store.rollouts.getRollout("r1");
      assert.deepEqual(
        updated.hosts.map((host) => [host.name, host.state, host.errorCode, host.updatedAtMs]),
        [
          ["web-1", "pending", "", 10],
          ["web-2", "failed", "E_X", 20],
          ["web-3", "activating", "", 20],
        ],
      );
      assert.equal(updated.updatedAtMs, 20);
      assert.deepEqual(
        (await store.rollouts.activeRollouts()).map((r) => r.id),
        ["r1"],
      );
      await store.rollouts.updateRolloutHosts("r1", [{ name: "web-3", patch: { state: "confirmed" } }], 30);
      await store.rollouts.updateRollout("r1", { state: "completed", currentWave: 1 }, 30);
      assert.deepEqual(await store.rollouts.activeRollouts(), []);
      assert.equal((await store.rollouts.findCompletedRollout("digest-r1", "prod"))?.id, "r1");
      assert.equal(await store.rollouts.findCompletedRollout("digest-r1", "staging"), undefined);
      assert.deepEqual(
        (await store.rollouts.rolloutsUpdatedSince(25)).map((r) => r.id),
        ["r1"],
      );
      await rejectsCode(store.rollouts.getRollout("nope"), "E_UNKNOWN_ROLLOUT");
    });

    test("maintenance windows are added, listed in id order and removed; an unknown one → E_UNKNOWN_WINDOW", async () => {
      const { store } = await open();
      await store.rollouts.addWindow({ id: "w2", hostName: "", tag: "db", cron: "0 3 * * *", durationMs: 3_600_000, timezone: "UTC" });
      await store.rollouts.addWindow({ id: "w1", hostName: "Web-1", tag: "", cron: "0 4 * * *", durationMs: 60_000, timezone: "Europe/Paris" });
      assert.deepEqual(
        (await store.rollouts.listWindows()).map((w) => [w.id, w.hostName, w.tag]),
        [
          ["w1", "web-1", ""],
          ["w2", "", "db"],
        ],
      );
      await store.rollouts.removeWindow("w1");
      await rejectsCode(store.rollouts.removeWindow("w1"), "E_UNKNOWN_WINDOW");
    });
  });

  describe(`${backend.name}: tokens, audit, bundle ledger`, () => {
    test("tokens: create, refuse a live duplicate, revoke, reuse the name, rotate; the built-in admin row follows admin.token", async () => {
      const { store } = await open();
      const base = {
        scopes: ["deploy" as const],
        tags: ["web"],
        environments: [],
        createdAtMs: 1,
        createdBy: "admin",
        expiresAtMs: 0,
        revokedAtMs: 0,
        rotatedAtMs: 0,
        builtin: false,
      };
      const created = await store.tokens.create({ ...base, name: "ci", tokenHash: "h1" });
      assert.deepEqual([created.scopes, created.tags, created.builtin], [["deploy"], ["web"], false]);
      await rejectsCode(store.tokens.create({ ...base, name: "ci", tokenHash: "h2" }), "E_TOKEN_EXISTS");
      await store.tokens.revoke("ci", 5);
      await rejectsCode(store.tokens.revoke("ci", 6), "E_UNKNOWN_TOKEN");
      assert.equal((await store.tokens.list(false)).length, 0);
      await store.tokens.create({ ...base, name: "ci", tokenHash: "h3" });
      const rotated = await store.tokens.rotate("ci", "h4", 7);
      assert.deepEqual([rotated.tokenHash, rotated.rotatedAtMs], ["h4", 7]);
      assert.equal((await store.tokens.findByHash("h4"))?.name, "ci");
      await store.tokens.setBuiltinAdmin("admin-1", 10);
      await store.tokens.setBuiltinAdmin("admin-1", 11);
      assert.equal((await store.tokens.get("admin"))?.rotatedAtMs, 0, "the same secret again is no rotation");
      await store.tokens.setBuiltinAdmin("admin-2", 12);
      const admin = await store.tokens.get("admin");
      assert.deepEqual([admin?.tokenHash, admin?.rotatedAtMs, admin?.builtin], ["admin-2", 12, true]);
      await rejectsCode(store.tokens.revoke("admin", 13), "E_BAD_ARGUMENT");
    });

    test("the audit trail lists newest first, per actor, and prunes by age", async () => {
      const { store } = await open();
      await store.audit.append(
        [1, 2, 3].map((atMs) => ({ atMs, actor: atMs === 2 ? "ci" : "admin", action: "deploy", target: `web-${atMs}`, detail: { n: atMs } })),
      );
      assert.deepEqual(
        (await store.audit.list(10)).map((entry) => entry.target),
        ["web-3", "web-2", "web-1"],
      );
      assert.deepEqual(
        (await store.audit.list(10, "ci")).map((entry) => entry.detail),
        [{ n: 2 }],
      );
      assert.equal(await store.audit.prune(3), 2);
      assert.equal((await store.audit.list(10)).length, 1);
    });

    test("bundle sequences are per site, never go back, and 50 imports per site are kept", async () => {
      const { store } = await open();
      for (let sequence = 1; sequence <= 60; sequence++) await store.bundles.record(ledgerEntry(sequence, "plant-a"));
      await store.bundles.record(ledgerEntry(5));
      assert.equal(await store.bundles.lastSequence("plant-a"), 60);
      assert.equal(await store.bundles.lastSequence(), 5);
      assert.equal(await store.bundles.highestSequence(), 60);
      await assert.rejects(store.bundles.record(ledgerEntry(60, "plant-a")), replayed);
      const imports = await store.bundles.imports();
      assert.equal(imports.filter((i) => i.site === "plant-a").length, 50);
      assert.deepEqual(imports.find((i) => i.site === undefined)?.hosts, { "web-1": SYS_A });
    });

    test("an import that deploys: a replayed sequence writes neither the ledger line nor any desired system", async () => {
      const { store } = await open();
      await store.addHost("web-1", hashToken("t"), [], 0);
      const write = (sequence: number) =>
        store.assignDesired({
          deploymentId: `d${sequence}`,
          mode: ActivationMode.ACTIVATION_MODE_UNSPECIFIED,
          nowMs: 1,
          requestedBy: "site",
          targets: [{ hostName: "web-1", storePath: SYS_A, activate: true, heldForWindow: false, intent: undefined }],
          bundle: ledgerEntry(sequence),
        });
      await write(7);
      assert.equal((await store.getHost("web-1"))?.desiredSerial, 1);
      await assert.rejects(write(7), replayed);
      assert.equal((await store.getHost("web-1"))?.desiredSerial, 1, "the refused import changed no host");
      assert.equal((await store.bundles.imports()).length, 1);
    });
  });
}
