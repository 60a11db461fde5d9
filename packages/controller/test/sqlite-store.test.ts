import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { FerryError, hashToken, type ErrorCode } from "@ferry/core";
import { SqliteStateStore, type HostRecord } from "@ferry/controller";
import { ActivationMode, HostPhase } from "@ferry/protocol";
import { recordDeployment } from "./record-deployment.js";

/** Removes what migrations after version 2 added, leaving the schema a version-2 release wrote. */
function dropPostVersion2Schema(db: Database.Database): void {
  db.exec(`DROP INDEX IF EXISTS hosts_name_ignoring_case; DROP INDEX IF EXISTS hosts_held_for_window;
    ALTER TABLE hosts DROP COLUMN desired_intent; ALTER TABLE rollout_hosts DROP COLUMN intent;
    DROP TABLE operator_tokens; DROP TABLE audit; DROP TABLE bundle_imports; DROP TABLE bundle_floor; ALTER TABLE deployments DROP COLUMN requested_by;
    ALTER TABLE hosts DROP COLUMN checks_failing; ALTER TABLE hosts DROP COLUMN checks_run;
    ALTER TABLE hosts DROP COLUMN previous_system; ALTER TABLE hosts DROP COLUMN held_for_window;
    ALTER TABLE rollouts DROP COLUMN mode; PRAGMA user_version = 2;`);
}

const root = mkdtempSync(join(tmpdir(), "ferry-store-"));
after(() => rmSync(root, { recursive: true, force: true }));

const SYS_A = "/nix/store/pz5wv3mkbf4bwihvsz8yqydfwb9bfhy5-nixos-system-a";
const SYS_B = "/nix/store/1zy01hjzwvvia6h9dq5xar88v77fgh9x-nixos-system-b";
let counter = 0;
const stores: SqliteStateStore[] = [];
after(async () => {
  for (const store of stores) await store.close().catch(() => undefined);
});

function open(file = join(root, `state-${++counter}.sqlite`)): { store: SqliteStateStore; file: string } {
  const store = new SqliteStateStore(file);
  stores.push(store);
  return { store, file };
}

async function rejectsCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof FerryError, `expected FerryError ${code}, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return true;
  });
}

describe("SqliteStateStore hosts", () => {
  test("addHost returns a fresh record with defaults, tags sorted and deduplicated", async () => {
    const { store } = open();
    const host = await store.addHost("web1", hashToken("t1"), ["prod", "eu", "prod"], 1000);
    assert.deepEqual(host, {
      name: "web1",
      tokenHash: hashToken("t1"),
      tags: ["eu", "prod"],
      createdAtMs: 1000,
      desiredSystem: "",
      desiredSerial: 0,
      deploymentId: "",
      activationMode: ActivationMode.ACTIVATION_MODE_UNSPECIFIED,
      currentSystem: "",
      previousSystem: "",
      phase: HostPhase.HOST_PHASE_IDLE,
      appliedSerial: 0,
      lastSeenMs: 0,
      lastErrorCode: "",
      lastErrorMessage: "",
      lastErrorOutput: "",
      agentVersion: "",
      desiredActivate: true,
      rolloutId: "",
      heldForWindow: false,
      checksFailingBeforeAndAfter: [],
      checksRun: 0,
      desiredIntent: undefined,
    } satisfies HostRecord);
    assert.deepEqual(await store.getHost("web1"), host);
    assert.equal(await store.getHost("web2"), undefined);
  });

  test("a duplicate name → E_HOST_EXISTS and the first token stays", async () => {
    const { store } = open();
    await store.addHost("web1", hashToken("first"), [], 1);
    await rejectsCode(store.addHost("web1", hashToken("second"), ["x"], 2), "E_HOST_EXISTS");
    const host = await store.getHost("web1");
    assert.equal(host?.tokenHash, hashToken("first"));
    assert.deepEqual(host?.tags, []);
  });

  test("bad host names are refused by every entry point", async () => {
    const { store } = open();
    for (const name of ["", "a/b", "..", "a b", "-x", "x".repeat(64)]) {
      await rejectsCode(store.addHost(name, hashToken("t"), [], 1), "E_BAD_HOST_NAME");
      await rejectsCode(store.getHost(name), "E_BAD_HOST_NAME");
      await rejectsCode(store.removeHost(name), "E_BAD_HOST_NAME");
      await rejectsCode(store.recordReport(name, { lastSeenMs: 1 }), "E_BAD_HOST_NAME");
    }
    assert.deepEqual(await store.listHosts(), []);
  });

  test("removeHost removes; an unknown host → E_UNKNOWN_HOST", async () => {
    const { store } = open();
    await store.addHost("web1", hashToken("t"), [], 1);
    await store.addHost("web2", hashToken("t"), [], 1);
    await store.removeHost("web1");
    assert.equal(await store.getHost("web1"), undefined);
    await rejectsCode(store.removeHost("web1"), "E_UNKNOWN_HOST");
    await rejectsCode(store.removeHost("nope"), "E_UNKNOWN_HOST");
    assert.deepEqual(
      (await store.listHosts()).map((h) => h.name),
      ["web2"],
    );
  });

  test("listHosts: all sorted by name, or exactly the named ones, E_UNKNOWN_HOST for a missing one", async () => {
    const { store } = open();
    for (const name of ["c", "a", "b"]) await store.addHost(name, hashToken(name), [], 1);
    assert.deepEqual(
      (await store.listHosts()).map((h) => h.name),
      ["a", "b", "c"],
    );
    assert.deepEqual(
      (await store.listHosts(["c", "a"])).map((h) => h.name),
      ["c", "a"],
    );
    await rejectsCode(store.listHosts(["a", "zz"]), "E_UNKNOWN_HOST");
  });
});

describe("SqliteStateStore deployments and reports", () => {
  test("recordDeployment sets the desired system and increments desiredSerial per host", async () => {
    const { store } = open();
    await store.addHost("a", hashToken("a"), [], 1);
    await store.addHost("b", hashToken("b"), [], 1);
    await store.recordReport("a", { lastErrorCode: "E_FETCH_FAILED", lastErrorMessage: "old", lastErrorOutput: "old out", phase: HostPhase.HOST_PHASE_FAILED });
    const first = await recordDeployment(store, "d1", [{ hostName: "a", storePath: SYS_A }], ActivationMode.ACTIVATION_MODE_SWITCH, 10);
    assert.equal(first.length, 1);
    assert.equal(first[0]?.desiredSerial, 1);
    assert.equal(first[0]?.phase, HostPhase.HOST_PHASE_PENDING);
    assert.equal(first[0]?.lastErrorCode, "", "a new deployment clears the previous error");
    assert.equal(first[0]?.lastErrorOutput, "");
    const second = await recordDeployment(
      store,
      "d2",
      [
        { hostName: "a", storePath: SYS_B },
        { hostName: "b", storePath: SYS_A },
      ],
      ActivationMode.ACTIVATION_MODE_BOOT,
      20,
    );
    assert.deepEqual(
      second.map((h) => [h.name, h.desiredSystem, h.desiredSerial, h.deploymentId, h.activationMode]),
      [
        ["a", SYS_B, 2, "d2", ActivationMode.ACTIVATION_MODE_BOOT],
        ["b", SYS_A, 1, "d2", ActivationMode.ACTIVATION_MODE_BOOT],
      ],
    );
  });

  test("concurrent deployments never hand out the same serial", async () => {
    const { store } = open();
    await store.addHost("a", hashToken("a"), [], 1);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => recordDeployment(store, `d${i}`, [{ hostName: "a", storePath: SYS_A }], ActivationMode.ACTIVATION_MODE_SWITCH, i)),
    );
    const serials = results.map((r) => r[0]?.desiredSerial).sort((x, y) => (x as number) - (y as number));
    assert.deepEqual(
      serials,
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    assert.equal((await store.getHost("a"))?.desiredSerial, 20);
  });

  test("an unknown host in the batch changes nothing for the others (one transaction)", async () => {
    const { store } = open();
    await store.addHost("a", hashToken("a"), [], 1);
    await store.addHost("b", hashToken("b"), [], 1);
    await recordDeployment(store, "d1", [{ hostName: "a", storePath: SYS_A }], ActivationMode.ACTIVATION_MODE_SWITCH, 1);
    const before = await store.listHosts();
    await rejectsCode(
      recordDeployment(
        store,
        "d2",
        [
          { hostName: "a", storePath: SYS_B },
          { hostName: "b", storePath: SYS_B },
          { hostName: "ghost", storePath: SYS_B },
        ],
        ActivationMode.ACTIVATION_MODE_SWITCH,
        2,
      ),
      "E_UNKNOWN_HOST",
    );
    assert.deepEqual(await store.listHosts(), before);
    // The failed deployment id was not recorded either: it can be used again.
    const again = await recordDeployment(store, "d2", [{ hostName: "b", storePath: SYS_B }], ActivationMode.ACTIVATION_MODE_SWITCH, 3);
    assert.equal(again[0]?.desiredSerial, 1);
  });

  test("bad targets are refused before anything is written", async () => {
    const { store } = open();
    await store.addHost("a", hashToken("a"), [], 1);
    await rejectsCode(recordDeployment(store, "d", [{ hostName: "a", storePath: "/tmp/evil" }], ActivationMode.ACTIVATION_MODE_SWITCH, 1), "E_BAD_STORE_PATH");
    await rejectsCode(recordDeployment(store, "d", [{ hostName: "a/..", storePath: SYS_A }], ActivationMode.ACTIVATION_MODE_SWITCH, 1), "E_BAD_HOST_NAME");
    assert.equal((await store.getHost("a"))?.desiredSerial, 0);
  });

  test("recordReport changes only the given fields; unknown host → E_UNKNOWN_HOST", async () => {
    const { store } = open();
    await store.addHost("a", hashToken("a"), ["t"], 5);
    await recordDeployment(store, "d1", [{ hostName: "a", storePath: SYS_A }], ActivationMode.ACTIVATION_MODE_SWITCH, 1);
    const before = await store.getHost("a");
    const after1 = await store.recordReport("a", {
      currentSystem: SYS_A,
      phase: HostPhase.HOST_PHASE_ACTIVE,
      appliedSerial: 1,
      lastSeenMs: 77,
      agentVersion: "0.1.0",
      lastErrorCode: undefined,
    });
    assert.deepEqual(after1, { ...before, currentSystem: SYS_A, phase: HostPhase.HOST_PHASE_ACTIVE, appliedSerial: 1, lastSeenMs: 77, agentVersion: "0.1.0" });
    assert.deepEqual(await store.recordReport("a", {}), after1);
    await rejectsCode(store.recordReport("ghost", { lastSeenMs: 1 }), "E_UNKNOWN_HOST");
    await rejectsCode(store.recordReport("ghost", {}), "E_UNKNOWN_HOST");
  });

  test("a new currentSystem moves the one it replaces to previousSystem; the same one or a report without it does not", async () => {
    const { store } = open();
    await store.addHost("a", hashToken("a"), [], 5);
    await store.recordReport("a", { currentSystem: SYS_A });
    assert.equal((await store.getHost("a"))?.previousSystem, "");
    await store.recordReport("a", { currentSystem: SYS_B });
    assert.deepEqual([(await store.getHost("a"))?.currentSystem, (await store.getHost("a"))?.previousSystem], [SYS_B, SYS_A]);
    await store.recordReport("a", { currentSystem: SYS_B, lastSeenMs: 9 });
    await store.recordReport("a", { lastSeenMs: 10 });
    assert.equal((await store.getHost("a"))?.previousSystem, SYS_A);
    await store.recordReport("a", { currentSystem: SYS_A });
    assert.equal((await store.getHost("a"))?.previousSystem, SYS_B);
  });

  test("a host's checks failing before and after the switch are stored with the result, and survive a reopen", async () => {
    const { store, file } = open();
    await store.addHost("a", hashToken("a"), [], 5);
    const reported = await store.recordReport("a", {
      phase: HostPhase.HOST_PHASE_ACTIVE,
      checksFailingBeforeAndAfter: ["systemd:nginx.service", "http:http://x/"],
      checksRun: 3,
    });
    assert.deepEqual([reported.checksFailingBeforeAndAfter, reported.checksRun], [["systemd:nginx.service", "http:http://x/"], 3]);
    await store.close();
    stores.splice(stores.indexOf(store), 1);
    const { store: reopened } = open(file);
    assert.deepEqual((await reopened.getHost("a"))?.checksFailingBeforeAndAfter, ["systemd:nginx.service", "http:http://x/"]);
    const cleared = await reopened.recordReport("a", { checksFailingBeforeAndAfter: [], checksRun: 0 });
    assert.deepEqual([cleared.checksFailingBeforeAndAfter, cleared.checksRun], [[], 0]);
  });

  test("events are listed per host, oldest first, the newest `limit` of them", async () => {
    const { store } = open();
    for (const name of ["a", "b"]) await store.addHost(name, hashToken(name), [], 0);
    for (let i = 1; i <= 5; i++) await store.recordReports([{ name: "a", report: {}, event: { atMs: i, kind: `k${i}`, data: { i, nested: { ok: true } } } }]);
    await store.recordReports([{ name: "b", report: {}, event: { atMs: 9, kind: "other", data: {} } }]);
    const events = await store.listEvents("a", 3);
    assert.deepEqual(
      events.map((e) => [e.atMs, e.kind, e.data["i"]]),
      [
        [3, "k3", 3],
        [4, "k4", 4],
        [5, "k5", 5],
      ],
    );
    assert.deepEqual(events[0]?.data, { i: 3, nested: { ok: true } });
    assert.deepEqual(await store.listEvents("nobody", 10), []);
  });
});

describe("SqliteStateStore deployments held for a maintenance window", () => {
  test("a held host is asked to fetch only; releasing it asks it to activate under a new serial of the same deployment", async () => {
    const { store } = open();
    await store.addHost("a", hashToken("a"), [], 1);
    await store.addHost("b", hashToken("b"), [], 1);
    const [a, b] = await recordDeployment(
      store,
      "d1",
      [
        { hostName: "a", storePath: SYS_A, heldForWindow: true },
        { hostName: "b", storePath: SYS_A },
      ],
      ActivationMode.ACTIVATION_MODE_UNSPECIFIED,
      2,
    );
    assert.deepEqual([a?.heldForWindow, a?.desiredActivate, a?.desiredSerial], [true, false, 1]);
    assert.deepEqual([b?.heldForWindow, b?.desiredActivate], [false, true]);
    assert.deepEqual(
      (await store.listHeld()).map((host) => host.name),
      ["a"],
    );
    assert.equal(await store.releaseHeld("a", "another-deployment"), undefined, "only the deployment that was held is released");
    const released = await store.releaseHeld("a", "d1");
    assert.deepEqual([released?.heldForWindow, released?.desiredActivate, released?.desiredSerial, released?.deploymentId], [false, true, 2, "d1"]);
    assert.equal(await store.releaseHeld("a", "d1"), undefined, "released once");
    assert.deepEqual(await store.listHeld(), []);
  });

  test("a newer deployment that is not held clears the hold", async () => {
    const { store } = open();
    await store.addHost("a", hashToken("a"), [], 1);
    await recordDeployment(store, "d1", [{ hostName: "a", storePath: SYS_A, heldForWindow: true }], ActivationMode.ACTIVATION_MODE_UNSPECIFIED, 2);
    const [after] = await recordDeployment(store, "d2", [{ hostName: "a", storePath: SYS_B }], ActivationMode.ACTIVATION_MODE_UNSPECIFIED, 3);
    assert.deepEqual([after?.heldForWindow, after?.desiredActivate], [false, true]);
    assert.equal(await store.releaseHeld("a", "d1"), undefined);
  });
});

describe("SqliteStateStore durability", () => {
  test("closing and reopening the file finds hosts, deployments and events", async () => {
    const { store, file } = open();
    await store.addHost("a", hashToken("a"), ["x"], 1);
    await recordDeployment(store, "d1", [{ hostName: "a", storePath: SYS_A }], ActivationMode.ACTIVATION_MODE_TEST, 2);
    await store.recordReport("a", { currentSystem: SYS_A, appliedSerial: 1, lastErrorOutput: "multi\nline\u00e9" });
    await store.recordReports([{ name: "a", report: {}, event: { atMs: 3, kind: "activation-succeeded", data: { serial: 1 } } }]);
    const expected = await store.getHost("a");
    await store.close();
    stores.splice(stores.indexOf(store), 1);

    const { store: reopened } = open(file);
    assert.deepEqual(await reopened.getHost("a"), expected);
    assert.deepEqual(
      (await reopened.listEvents("a", 10)).map((event) => [event.kind, event.data["serial"]]),
      [
        ["desired-assigned", 1],
        ["activation-succeeded", 1],
      ],
    );
    // Migrations are not re-run on an existing database, and serials continue.
    const next = await recordDeployment(reopened, "d2", [{ hostName: "a", storePath: SYS_B }], ActivationMode.ACTIVATION_MODE_SWITCH, 4);
    assert.equal(next[0]?.desiredSerial, 2);
    await rejectsCode(reopened.addHost("a", hashToken("a"), [], 5), "E_HOST_EXISTS");
  });

  test("upgrading a version-2 database keeps what its hosts' mode meant: switch (1) was the host's own strategy", async () => {
    const { store, file } = open();
    await store.addHost("a", hashToken("a"), [], 1);
    await recordDeployment(store, "d1", [{ hostName: "a", storePath: SYS_A }], ActivationMode.ACTIVATION_MODE_SWITCH, 2);
    await store.addHost("b", hashToken("b"), [], 1);
    await recordDeployment(store, "d2", [{ hostName: "b", storePath: SYS_A }], ActivationMode.ACTIVATION_MODE_BOOT, 2);
    await store.close();
    stores.splice(stores.indexOf(store), 1);
    // Turn the file back into what the previous release wrote.
    const db = new Database(file);
    dropPostVersion2Schema(db);
    db.close();

    const { store: upgraded } = open(file);
    assert.equal((await upgraded.getHost("a"))?.activationMode, ActivationMode.ACTIVATION_MODE_UNSPECIFIED);
    assert.equal((await upgraded.getHost("b"))?.activationMode, ActivationMode.ACTIVATION_MODE_BOOT);
    assert.equal((await upgraded.getHost("a"))?.heldForWindow, false);
    assert.deepEqual([(await upgraded.getHost("a"))?.checksFailingBeforeAndAfter, (await upgraded.getHost("a"))?.checksRun], [[], 0]);
  });

  test("a second store on the same file sees committed writes", async () => {
    const { store, file } = open();
    const { store: other } = open(file);
    await store.addHost("shared", hashToken("s"), [], 1);
    assert.equal((await other.getHost("shared"))?.name, "shared");
  });
});

describe("SqliteStateStore host names ignore case", () => {
  test("Web-2 is stored, found and deployed as web-2; adding web-2 after Web-2 → E_HOST_EXISTS", async () => {
    const { store } = open();
    const added = await store.addHost("Web-2", hashToken("first"), [], 1);
    assert.equal(added.name, "web-2");
    await rejectsCode(store.addHost("web-2", hashToken("second"), [], 2), "E_HOST_EXISTS");
    await rejectsCode(store.addHost("WEB-2", hashToken("second"), [], 2), "E_HOST_EXISTS");
    assert.equal((await store.getHost("WEB-2"))?.tokenHash, hashToken("first"));
    const [deployed] = await recordDeployment(store, "d1", [{ hostName: "wEb-2", storePath: SYS_A }], ActivationMode.ACTIVATION_MODE_SWITCH, 3);
    assert.equal(deployed?.name, "web-2");
    assert.equal((await store.recordReport("WEB-2", { lastSeenMs: 4 })).lastSeenMs, 4);
    assert.deepEqual(
      (await store.listHosts(["Web-2"])).map((host) => [host.name, host.desiredSystem]),
      [["web-2", SYS_A]],
    );
    await store.removeHost("WEB-2");
    assert.deepEqual(await store.listHosts(), []);
  });

  /** Turns a current database back into what version 2 (names stored as typed) left, with `names` as its hosts. */
  function asVersion2(file: string, names: string[]): void {
    const db = new Database(file);
    dropPostVersion2Schema(db);
    db.exec("DELETE FROM hosts");
    for (const name of names) db.prepare("INSERT INTO hosts (name, token_hash, created_at_ms) VALUES (?, ?, 1)").run(name, hashToken(name));
    db.prepare("INSERT INTO events (at_ms, host_name, kind, data) VALUES (1, ?, 'x', '{}')").run(names[0]);
    db.prepare("INSERT INTO maintenance_windows (id, host_name, tag, cron, duration_ms, timezone) VALUES ('w1', ?, '', '* * * * *', 60000, 'UTC')").run(
      names[0],
    );
    db.pragma("user_version = 2");
    db.close();
  }

  test("a database from before keeps its mixed-case hosts, renamed to lower case with their events and windows", async () => {
    const { store, file } = open();
    await store.close();
    asVersion2(file, ["Web-2", "db-1"]);
    const { store: migrated } = open(file);
    assert.deepEqual(
      (await migrated.listHosts()).map((host) => [host.name, host.tokenHash]),
      [
        ["db-1", hashToken("db-1")],
        ["web-2", hashToken("Web-2")],
      ],
    );
    assert.equal((await migrated.listEvents("web-2", 10)).length, 1);
    assert.deepEqual(
      (await migrated.rollouts.listWindows()).map((window) => window.hostName),
      ["web-2"],
    );
    await rejectsCode(migrated.addHost("WEB-2", hashToken("again"), [], 2), "E_HOST_EXISTS");
  });

  test("a database holding Web-2 and web-2 is refused with E_HOST_CASE_CLASH naming both, and left as it was", async () => {
    const { store, file } = open();
    await store.close();
    asVersion2(file, ["Web-2", "web-2", "db-1"]);
    assert.throws(
      () => new SqliteStateStore(file),
      (error: unknown) => error instanceof FerryError && error.code === "E_HOST_CASE_CLASH" && /"Web-2" and "web-2"/.test(error.message),
    );
    const db = new Database(file, { readonly: true });
    assert.equal(db.pragma("user_version", { simple: true }), 2);
    assert.deepEqual(
      (db.prepare("SELECT name FROM hosts ORDER BY name").all() as { name: string }[]).map((row) => row.name),
      ["Web-2", "db-1", "web-2"],
    );
    db.close();
  });

  test("the schema itself refuses two names differing only in case", async () => {
    const { store, file } = open();
    await store.addHost("web-2", hashToken("a"), [], 1);
    const db = new Database(file);
    assert.throws(() => db.prepare("INSERT INTO hosts (name, token_hash, created_at_ms) VALUES ('Web-2', 'x', 1)").run(), /UNIQUE/);
    db.close();
  });
});
