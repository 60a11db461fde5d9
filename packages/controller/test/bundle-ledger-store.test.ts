// The site's bundle ledger in the controller's database: sequences per site,
// a bounded history, one adoption of the old ledger file, and an import that
// deploys writing its ledger line in the same transaction as the hosts.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BundleLedger, FerryError, silentLogger } from "@ferry/core";
import { adoptLedgerFile } from "../src/api/site-service.js";
import { openSqliteStore } from "../src/store/open-store.js";
import type { SqlStateStore } from "../src/store/sql-store.js";
import { ledgerEntry } from "./store-contract-records.js";

const root = mkdtempSync(join(tmpdir(), "ferry-ledger-"));
const stores: SqlStateStore[] = [];
after(async () => {
  for (const store of stores) await store.close();
  rmSync(root, { recursive: true, force: true });
});
let counter = 0;
async function open(dir = mkdtempSync(join(root, "d-"))): Promise<{ store: SqlStateStore; dir: string }> {
  const store = await openSqliteStore(join(dir, `state-${++counter}.sqlite`));
  stores.push(store);
  return { store, dir };
}
const replayed = (error: unknown) => error instanceof FerryError && error.code === "E_BUNDLE_REPLAYED";

describe("bundle ledger in the database", () => {
  test("the ledger file of an earlier version is adopted once, its version-1 floor kept, and set aside", async () => {
    const { store, dir } = await open();
    const file = join(dir, "bundles.json");
    writeFileSync(file, JSON.stringify({ version: 1, lastSequence: 40, imports: [ledgerEntry(40)] }));
    assert.equal(new BundleLedger(file).lastSequence(), 40);
    await adoptLedgerFile(dir, store.bundles, silentLogger());
    assert.ok(!existsSync(file) && existsSync(`${file}.adopted`));
    assert.equal(await store.bundles.lastSequence("plant-b"), 40, "a version-1 floor holds for every site");
    await assert.rejects(store.bundles.record(ledgerEntry(40)), replayed);
    // Killed before the rename: the next start adopts nothing twice.
    writeFileSync(file, JSON.stringify({ version: 1, lastSequence: 99, imports: [] }));
    await adoptLedgerFile(dir, store.bundles, silentLogger());
    assert.equal(await store.bundles.lastSequence(), 40);
  });
});
