import { slices } from "@ferry/core";
import { sql } from "kysely";
import type { HostEvent } from "./state-store.js";
import { NAMES_PER_STATEMENT, type Db } from "./sql-schema.js";

function toEvent(row: { at_ms: number; host_name: string; kind: string; data: string }): HostEvent {
  return { atMs: row.at_ms, hostName: row.host_name, kind: row.kind, data: JSON.parse(row.data) as Record<string, unknown> };
}

/** Hosts' history: appended with the writes it records, bounded per host and by age. */
export class SqlEventLog {
  constructor(
    private readonly db: Db,
    private readonly eventsPerHost: number,
  ) {}

  /** Appends events in the caller's transaction, then keeps each of their hosts' newest `eventsPerHost`. */
  async append(trx: Db, events: readonly HostEvent[]): Promise<void> {
    for await (const part of slices(events, 500)) {
      await trx
        .insertInto("events")
        .values(part.map((event) => ({ at_ms: event.atMs, host_name: event.hostName, kind: event.kind, data: JSON.stringify(event.data) })))
        .execute();
    }
    for await (const part of slices([...new Set(events.map((event) => event.hostName))], NAMES_PER_STATEMENT)) {
      await sql`DELETE FROM events WHERE id IN (
          SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY host_name ORDER BY id DESC) AS newer FROM events WHERE host_name IN (${sql.join(part)})) AS ranked
          WHERE newer > ${this.eventsPerHost})`.execute(trx);
    }
  }

  async prune(olderThanMs: number): Promise<number> {
    const { numDeletedRows } = await this.db.deleteFrom("events").where("at_ms", "<", olderThanMs).executeTakeFirst();
    return Number(numDeletedRows);
  }

  async listOfKind(kind: string, limit: number): Promise<HostEvent[]> {
    const rows = await this.db
      .selectFrom("events")
      .select(["at_ms", "host_name", "kind", "data"])
      .where("kind", "=", kind)
      .orderBy("id", "desc")
      .limit(limit)
      .execute();
    return rows.map(toEvent);
  }

  async list(hostName: string, limit: number): Promise<HostEvent[]> {
    const rows = await this.db
      .selectFrom("events")
      .select(["at_ms", "host_name", "kind", "data"])
      .where("host_name", "=", hostName)
      .orderBy("id", "desc")
      .limit(limit)
      .execute();
    return rows.reverse().map(toEvent);
  }
}
