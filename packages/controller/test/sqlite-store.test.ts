import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { FerryError, hashToken } from "@ferry/core";
import { openSqliteStore } from "@ferry/controller";
import { ActivationMode } from "@ferry/protocol";
import type { StateStore } from "../src/store/state-store.js";
import { recordDeployment } from "./record-deployment.js";
import { SYS_A, rejectsCode, storeContract } from "./store-contract.js";
import { recordsContract } from "./store-contract-records.js";

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

let counter = 0;
const stores: StateStore[] = [];
after(async () => {
  for (const store of stores) await store.close().catch(() => undefined);
});

async function open(file = join(root, `state-${++counter}.sqlite`)): Promise<{ store: StateStore; file: string }> {
  const store = await openSqliteStore(file);
  stores.push(store);
  return { store, file };
}

storeContract({ name: "SQLite", open });
recordsContract({ name: "SQLite", open });

describe("SQLite files of earlier releases", () => {
  test("upgrading a version-2 database keeps what its hosts' mode meant: switch (1) was the host's own strategy", async () => {
    const { store, file } = await open();
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

    const { store: upgraded } = await open(file);
    assert.equal((await upgraded.getHost("a"))?.activationMode, ActivationMode.ACTIVATION_MODE_UNSPECIFIED);
    assert.equal((await upgraded.getHost("b"))?.activationMode, ActivationMode.ACTIVATION_MODE_BOOT);
    assert.equal((await upgraded.getHost("a"))?.heldForWindow, false);
    assert.deepEqual([(await upgraded.getHost("a"))?.checksFailingBeforeAndAfter, (await upgraded.getHost("a"))?.checksRun], [[], 0]);
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
    const { store, file } = await open();
    await store.close();
    asVersion2(file, ["Web-2", "db-1"]);
    const { store: migrated } = await open(file);
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
    const { store, file } = await open();
    await store.close();
    asVersion2(file, ["Web-2", "web-2", "db-1"]);
    await assert.rejects(
      openSqliteStore(file),
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
    const { store, file } = await open();
    await store.addHost("web-2", hashToken("a"), [], 1);
    const db = new Database(file);
    assert.throws(() => db.prepare("INSERT INTO hosts (name, token_hash, created_at_ms) VALUES ('Web-2', 'x', 1)").run(), /UNIQUE/);
    db.close();
  });
});
