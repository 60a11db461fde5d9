import { sql } from "kysely";
import { FerryError, type LedgerEntry } from "@ferry/core";
import type { BundleLedgerStore } from "./bundle-records.js";
import type { BundleImportsTable, Db, SqlDialect } from "./sql-schema.js";

/** Imports kept per site; the newest always stays, so the last sequence never goes down. */
const KEEP = 50;

/** Any fixed number: the transaction-scoped PostgreSQL lock that orders bundle imports between replicas. */
const LEDGER_LOCK = 0x666572_01;

function importRow(site: string, entry: LedgerEntry): BundleImportsTable {
  return {
    site,
    sequence: entry.sequence,
    manifest_sha256: entry.manifestSha256,
    created_at: entry.createdAt,
    imported_at_ms: entry.importedAtMs,
    signer: entry.signer,
    hosts: JSON.stringify(entry.hosts),
  };
}

export class SqlBundleLedger implements BundleLedgerStore {
  constructor(
    private readonly db: Db,
    private readonly dialect: SqlDialect,
  ) {}

  private async floor(db: Db): Promise<number> {
    return (await db.selectFrom("bundle_floor").select("sequence").where("id", "=", 1).executeTakeFirst())?.sequence ?? 0;
  }

  private async last(db: Db, site: string | undefined): Promise<number> {
    let query = db.selectFrom("bundle_imports").select((eb) => eb.fn.max("sequence").as("sequence"));
    if (site !== undefined) query = query.where("site", "=", site);
    const row = await query.executeTakeFirst();
    return Math.max(Number(row?.sequence ?? 0), await this.floor(db));
  }

  async lastSequence(site = ""): Promise<number> {
    return this.last(this.db, site);
  }

  async highestSequence(): Promise<number> {
    return this.last(this.db, undefined);
  }

  async imports(): Promise<LedgerEntry[]> {
    const rows = await this.db.selectFrom("bundle_imports").selectAll().orderBy("imported_at_ms").orderBy("sequence").execute();
    return rows.map((row) => ({
      sequence: row.sequence,
      manifestSha256: row.manifest_sha256,
      createdAt: row.created_at,
      importedAtMs: row.imported_at_ms,
      signer: row.signer,
      hosts: JSON.parse(row.hosts) as Record<string, string>,
      ...(row.site === "" ? {} : { site: row.site }),
    }));
  }

  async record(entry: LedgerEntry): Promise<void> {
    await this.db.transaction().execute((trx) => this.recordIn(trx, entry));
  }

  /** Records inside the caller's transaction (assignDesired's, for an import that deploys). */
  async recordIn(trx: Db, entry: LedgerEntry): Promise<void> {
    // Two replicas importing at once: the second waits, then sees the first one's sequence.
    if (this.dialect === "postgres") await sql`SELECT pg_advisory_xact_lock(${LEDGER_LOCK})`.execute(trx);
    const site = entry.site ?? "";
    const last = await this.last(trx, site);
    if (entry.sequence <= last) throw new FerryError("E_BUNDLE_REPLAYED", `bundle sequence ${entry.sequence} is not above the last one taken here (${last})`);
    await trx.insertInto("bundle_imports").values(importRow(site, entry)).execute();
    await trx
      .deleteFrom("bundle_imports")
      .where("site", "=", site)
      .where("sequence", "not in", (eb) => eb.selectFrom("bundle_imports").select("sequence").where("site", "=", site).orderBy("sequence", "desc").limit(KEEP))
      .execute();
  }

  async adopt(ledger: { sites: Record<string, { imports: readonly LedgerEntry[] }>; legacyFloor: number }): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const held = await trx
        .selectFrom("bundle_imports")
        .select((eb) => eb.fn.countAll().as("n"))
        .executeTakeFirstOrThrow();
      if (Number(held.n) > 0 || (await this.floor(trx)) > 0) return false;
      await trx.insertInto("bundle_floor").values({ id: 1, sequence: ledger.legacyFloor }).execute();
      for (const [site, { imports }] of Object.entries(ledger.sites)) {
        for (const entry of imports) {
          await trx
            .insertInto("bundle_imports")
            .values(importRow(site, entry))
            .onConflict((conflict) => conflict.doNothing())
            .execute();
        }
      }
      return true;
    });
  }
}
