import type Database from "better-sqlite3";
import type { AuditEntry, AuditStore } from "./access-records.js";

/** Part of the schema migration that introduced scoped tokens (see sqlite-store.ts). */
export const AUDIT_SCHEMA = `
  CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
  );
  CREATE INDEX audit_by_actor ON audit (actor, id);
  CREATE INDEX audit_by_time ON audit (at_ms);`;

interface AuditRow {
  id: number;
  at_ms: number;
  actor: string;
  action: string;
  target: string;
  detail: string;
}

export class SqliteAuditStore implements AuditStore {
  constructor(private readonly db: Database.Database) {}

  async append(entries: readonly Omit<AuditEntry, "id">[]): Promise<void> {
    const insert = this.db.prepare("INSERT INTO audit (at_ms, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)");
    this.db.transaction(() => {
      for (const entry of entries) insert.run(entry.atMs, entry.actor, entry.action, entry.target, JSON.stringify(entry.detail));
    })();
  }

  async list(limit: number, actor = ""): Promise<AuditEntry[]> {
    const rows = (
      actor === ""
        ? this.db.prepare("SELECT * FROM audit ORDER BY id DESC LIMIT ?").all(limit)
        : this.db.prepare("SELECT * FROM audit WHERE actor = ? ORDER BY id DESC LIMIT ?").all(actor, limit)
    ) as AuditRow[];
    return rows.map((row) => ({
      id: row.id,
      atMs: row.at_ms,
      actor: row.actor,
      action: row.action,
      target: row.target,
      detail: JSON.parse(row.detail) as Record<string, unknown>,
    }));
  }

  async prune(olderThanMs: number): Promise<number> {
    return this.db.prepare("DELETE FROM audit WHERE at_ms < ?").run(olderThanMs).changes;
  }
}
