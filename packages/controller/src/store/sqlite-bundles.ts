import type Database from "better-sqlite3";
import { FerryError, type LedgerEntry } from "@ferry/core";
import type { BundleLedgerStore } from "./bundle-records.js";

export const BUNDLES_SCHEMA = `
  CREATE TABLE bundle_imports (
    site TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL,
    imported_at_ms INTEGER NOT NULL,
    signer TEXT NOT NULL,
    hosts TEXT NOT NULL,
    PRIMARY KEY (site, sequence)
  );
  CREATE TABLE bundle_floor (id INTEGER PRIMARY KEY CHECK (id = 1), sequence INTEGER NOT NULL);`;

/** Imports kept per site; the newest always stays, so the last sequence never goes down. */
const KEEP = 50;

interface ImportRow {
  site: string;
  sequence: number;
  manifest_sha256: string;
  created_at: string;
  imported_at_ms: number;
  signer: string;
  hosts: string;
}

export class SqliteBundleLedger implements BundleLedgerStore {
  constructor(private readonly db: Database.Database) {}

  private floor(): number {
    return (this.db.prepare("SELECT sequence FROM bundle_floor WHERE id = 1").get() as { sequence: number } | undefined)?.sequence ?? 0;
  }

  private last(site: string): number {
    const row = this.db.prepare("SELECT max(sequence) AS sequence FROM bundle_imports WHERE site = ?").get(site) as { sequence: number | null };
    return Math.max(row.sequence ?? 0, this.floor());
  }

  async lastSequence(site = ""): Promise<number> {
    return this.last(site);
  }

  async highestSequence(): Promise<number> {
    const row = this.db.prepare("SELECT max(sequence) AS sequence FROM bundle_imports").get() as { sequence: number | null };
    return Math.max(row.sequence ?? 0, this.floor());
  }

  async imports(): Promise<LedgerEntry[]> {
    const rows = this.db.prepare("SELECT * FROM bundle_imports ORDER BY imported_at_ms, sequence").all() as ImportRow[];
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
    this.db.transaction(() => this.recordIn(entry))();
  }

  /** Records inside the caller's transaction (assignDesired's, for an import that deploys). */
  recordIn(entry: LedgerEntry): void {
    const site = entry.site ?? "";
    const last = this.last(site);
    if (entry.sequence <= last) throw new FerryError("E_BUNDLE_REPLAYED", `bundle sequence ${entry.sequence} is not above the last one taken here (${last})`);
    this.db
      .prepare("INSERT INTO bundle_imports (site, sequence, manifest_sha256, created_at, imported_at_ms, signer, hosts) VALUES (?, ?, ?, ?, ?, ?, ?)")
      .run(site, entry.sequence, entry.manifestSha256, entry.createdAt, entry.importedAtMs, entry.signer, JSON.stringify(entry.hosts));
    this.db
      .prepare(
        "DELETE FROM bundle_imports WHERE site = ? AND sequence NOT IN (SELECT sequence FROM bundle_imports WHERE site = ? ORDER BY sequence DESC LIMIT ?)",
      )
      .run(site, site, KEEP);
  }

  async adopt(ledger: { sites: Record<string, { imports: readonly LedgerEntry[] }>; legacyFloor: number }): Promise<boolean> {
    return this.db.transaction(() => {
      const held = (this.db.prepare("SELECT count(*) AS n FROM bundle_imports").get() as { n: number }).n;
      if (held > 0 || this.floor() > 0) return false;
      this.db.prepare("INSERT INTO bundle_floor (id, sequence) VALUES (1, ?)").run(ledger.legacyFloor);
      const insert = this.db.prepare(
        "INSERT OR IGNORE INTO bundle_imports (site, sequence, manifest_sha256, created_at, imported_at_ms, signer, hosts) VALUES (?, ?, ?, ?, ?, ?, ?)",
      );
      for (const [site, { imports }] of Object.entries(ledger.sites)) {
        for (const entry of imports) {
          insert.run(site, entry.sequence, entry.manifestSha256, entry.createdAt, entry.importedAtMs, entry.signer, JSON.stringify(entry.hosts));
        }
      }
      return true;
    })();
  }
}
