import { slices } from "@ferry/core";
import type { AuditEntry, AuditStore } from "./access-records.js";
import type { Db } from "./sql-schema.js";

export class SqlAuditStore implements AuditStore {
  constructor(private readonly db: Db) {}

  async append(entries: readonly Omit<AuditEntry, "id">[]): Promise<void> {
    if (entries.length === 0) return;
    const rows = entries.map((entry) => ({
      at_ms: entry.atMs,
      actor: entry.actor,
      action: entry.action,
      target: entry.target,
      detail: JSON.stringify(entry.detail),
    }));
    await this.db.transaction().execute(async (trx) => {
      for await (const part of slices(rows, 500)) await trx.insertInto("audit").values(part).execute();
    });
  }

  async list(limit: number, actor = ""): Promise<AuditEntry[]> {
    let query = this.db.selectFrom("audit").selectAll().orderBy("id", "desc").limit(limit);
    if (actor !== "") query = query.where("actor", "=", actor);
    return (await query.execute()).map((row) => ({
      id: row.id,
      atMs: row.at_ms,
      actor: row.actor,
      action: row.action,
      target: row.target,
      detail: JSON.parse(row.detail) as Record<string, unknown>,
    }));
  }

  async prune(olderThanMs: number): Promise<number> {
    const { numDeletedRows } = await this.db.deleteFrom("audit").where("at_ms", "<", olderThanMs).executeTakeFirst();
    return Number(numDeletedRows);
  }
}
