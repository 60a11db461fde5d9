import { sql } from "kysely";
import { FerryError, assertHostName, assertStorePath, groupBy, slices } from "@ferry/core";
import { ActivationMode, HostPhase } from "@ferry/protocol";
import { encodeStoredIntent } from "./stored-intent.js";
import { reportColumns, toRecord, type HostRow, type ReportColumns } from "./sql-host-rows.js";
import {
  DEFAULT_HISTORY_RETENTION,
  type DesiredWrite,
  type HistoryRetention,
  type HostChanges,
  type HostEvent,
  type HostRecord,
  type HostReport,
  type HostReportEntry,
  type StateStore,
} from "./state-store.js";
import { DESIRED_ASSIGNED, assignedEventData } from "./history-events.js";
import { NAMES_PER_STATEMENT, type Db, type HostsTable, type SqlDialect } from "./sql-schema.js";
import { SqlRolloutStore } from "./sql-rollouts.js";
import { SqlTokenStore } from "./sql-tokens.js";
import { SqlAuditStore } from "./sql-audit.js";
import { SqlBundleLedger } from "./sql-bundles.js";
import { SqlEventLog } from "./sql-events.js";
import { SqlRolloutCommands } from "./sql-rollout-commands.js";

/** PostgreSQL channel on which a committed host change announces its change-clock value. */
export const HOST_CHANGES_CHANNEL = "ferry_host_changes";
/** PostgreSQL channel naming a host removed (its agent must be cut wherever it is linked). */
export const HOST_REMOVED_CHANNEL = "ferry_host_removed";

/**
 * The state store over either backend (Kysely): one set of queries. Writes of
 * many hosts are set-based (one statement per group of up to 1000 names), so
 * a 10,000-host deploy costs tens of statements on PostgreSQL, not tens of
 * thousands of round trips.
 */
export class SqlStateStore implements StateStore {
  readonly rollouts: SqlRolloutStore;
  readonly tokens: SqlTokenStore;
  readonly audit: SqlAuditStore;
  readonly bundles: SqlBundleLedger;
  readonly commands: SqlRolloutCommands;
  private readonly events: SqlEventLog;

  constructor(
    private readonly db: Db,
    readonly dialect: SqlDialect,
    retention: Pick<HistoryRetention, "eventsPerHost"> = DEFAULT_HISTORY_RETENTION,
  ) {
    this.events = new SqlEventLog(db, retention.eventsPerHost);
    this.rollouts = new SqlRolloutStore(db);
    this.tokens = new SqlTokenStore(db);
    this.audit = new SqlAuditStore(db);
    this.bundles = new SqlBundleLedger(db, dialect);
    this.commands = new SqlRolloutCommands(db);
  }

  private async row(db: Db, name: string): Promise<HostRow | undefined> {
    return db.selectFrom("hosts").selectAll().where("name", "=", name).executeTakeFirst();
  }

  private async mustGet(name: string): Promise<HostRecord> {
    const row = await this.row(this.db, name);
    if (!row) throw new FerryError("E_UNKNOWN_HOST", `unknown host ${name}`);
    return toRecord(row);
  }

  /**
   * Bumps the change clock, first thing in a transaction that changes hosts:
   * its row lock orders such transactions, so values become visible in order
   * and a replica reading "changed after N" never skips one committed later
   * with a smaller value. PostgreSQL announces the value at commit.
   */
  private async tick(trx: Db): Promise<number> {
    const { value } = await trx
      .updateTable("change_clock")
      .set((eb) => ({ value: eb("value", "+", 1) }))
      .where("id", "=", 1)
      .returning("value")
      .executeTakeFirstOrThrow();
    if (this.dialect === "postgres") await sql`SELECT pg_notify(${HOST_CHANGES_CHANNEL}, ${String(value)})`.execute(trx);
    return value;
  }

  async addHost(given: string, tokenHash: string, tags: readonly string[], nowMs: number): Promise<HostRecord> {
    const name = assertHostName(given);
    // One statement: a name taken (by this replica or another) inserts nothing and returns no row.
    const row = await this.db
      .insertInto("hosts")
      // The other columns take the schema's defaults: a new host has no desired system, reports or errors.
      .values({
        name,
        token_hash: tokenHash,
        tags: JSON.stringify([...new Set(tags)].sort()),
        created_at_ms: nowMs,
        activation_mode: ActivationMode.ACTIVATION_MODE_UNSPECIFIED,
      } as HostsTable)
      .onConflict((conflict) => conflict.doNothing())
      .returningAll()
      .executeTakeFirst();
    if (!row) throw new FerryError("E_HOST_EXISTS", `host ${name} already exists`);
    return toRecord(row);
  }

  async removeHost(given: string): Promise<void> {
    const name = assertHostName(given);
    await this.db.transaction().execute(async (trx) => {
      const { numDeletedRows } = await trx.deleteFrom("hosts").where("name", "=", name).executeTakeFirst();
      if (numDeletedRows === 0n) throw new FerryError("E_UNKNOWN_HOST", `unknown host ${name}`);
      // A removed row is not in changesSince: the replica holding the host's agent is told by name, at commit.
      if (this.dialect === "postgres") await sql`SELECT pg_notify(${HOST_REMOVED_CHANNEL}, ${name})`.execute(trx);
    });
  }

  async setHostToken(given: string, tokenHash: string): Promise<HostRecord> {
    const name = assertHostName(given);
    const { numUpdatedRows } = await this.db.updateTable("hosts").set({ token_hash: tokenHash }).where("name", "=", name).executeTakeFirst();
    if (numUpdatedRows === 0n) throw new FerryError("E_UNKNOWN_HOST", `unknown host ${name}`);
    return this.mustGet(name);
  }

  async getHost(given: string): Promise<HostRecord | undefined> {
    const row = await this.row(this.db, assertHostName(given));
    return row && toRecord(row);
  }

  async listHosts(names: readonly string[] = []): Promise<HostRecord[]> {
    if (names.length === 0) return (await this.db.selectFrom("hosts").selectAll().orderBy("name").execute()).map(toRecord);
    const wanted = names.map(assertHostName);
    const byName = new Map((await this.findHosts(wanted)).map((record) => [record.name, record]));
    return wanted.map((name) => {
      const record = byName.get(name);
      if (!record) throw new FerryError("E_UNKNOWN_HOST", `unknown host ${name}`);
      return record;
    });
  }

  async listHostPhases(): Promise<Pick<HostRecord, "name" | "phase">[]> {
    return this.db.selectFrom("hosts").select(["name", "phase"]).execute();
  }

  async listHostsAfter(name: string, limit: number): Promise<HostRecord[]> {
    return (await this.db.selectFrom("hosts").selectAll().where("name", ">", name).orderBy("name").limit(limit).execute()).map(toRecord);
  }

  async findHosts(names: readonly string[]): Promise<HostRecord[]> {
    const found: HostRecord[] = [];
    for await (const part of slices([...new Set(names.map(assertHostName))], NAMES_PER_STATEMENT)) {
      for (const row of await this.db.selectFrom("hosts").selectAll().where("name", "in", part).execute()) found.push(toRecord(row));
    }
    return found;
  }

  async assignDesired(write: DesiredWrite): Promise<HostRecord[]> {
    const targets = write.targets.map((target) => ({ ...target, hostName: assertHostName(target.hostName), storePath: assertStorePath(target.storePath) }));
    const rolloutId = write.rollout?.id ?? "";
    // Hosts given the same system the same way are written by one statement per 1000 names.
    const groups = groupBy(targets, (target) => JSON.stringify([target.storePath, target.activate, target.heldForWindow, encodeStoredIntent(target.intent)]));
    // The records as this transaction wrote them: read afterwards, a concurrent deploy's serial could show instead.
    const assigned = new Map<string, HostRecord>();
    await this.db.transaction().execute(async (trx) => {
      const seq = await this.tick(trx);
      if (write.bundle) await this.bundles.recordIn(trx, write.bundle);
      for (const group of groups.values()) {
        const first = group[0] as (typeof targets)[number];
        for await (const part of slices(
          group.map((target) => target.hostName),
          NAMES_PER_STATEMENT,
        )) {
          // Every field of the desired system is set here: nothing is inherited from an earlier deployment.
          const rows = await trx
            .updateTable("hosts")
            .set((eb) => ({
              desired_system: first.storePath,
              desired_serial: eb("desired_serial", "+", 1),
              deployment_id: write.deploymentId,
              activation_mode: write.mode,
              desired_activate: first.activate && !first.heldForWindow ? 1 : 0,
              held_for_window: first.heldForWindow ? 1 : 0,
              desired_intent: encodeStoredIntent(first.intent),
              rollout_id: rolloutId,
              phase: HostPhase.HOST_PHASE_PENDING,
              last_error_code: "",
              last_error_message: "",
              last_error_output: "",
              change_seq: seq,
            }))
            .where("name", "in", part)
            .returningAll()
            .execute();
          for (const row of rows) assigned.set(row.name, toRecord(row));
        }
      }
      const missing = targets.find((target) => !assigned.has(target.hostName));
      if (missing) throw new FerryError("E_UNKNOWN_HOST", `unknown host ${missing.hostName}`);
      if (write.rollout) {
        const { state } = write.rollout;
        for await (const part of slices(
          targets.map((target) => target.hostName),
          NAMES_PER_STATEMENT,
        )) {
          await trx
            .updateTable("rollout_hosts")
            .set((eb) => ({
              state,
              serial: eb.selectFrom("hosts").select("hosts.desired_serial").whereRef("hosts.name", "=", "rollout_hosts.name"),
              error_code: "",
              error_message: "",
              updated_at_ms: write.nowMs,
            }))
            .where("rollout_id", "=", rolloutId)
            .where("name", "in", part)
            .execute();
        }
        await trx.updateTable("rollouts").set({ updated_at_ms: write.nowMs }).where("id", "=", rolloutId).execute();
      } else {
        const recorded = targets.map(({ hostName, storePath, heldForWindow, intent }) => ({ hostName, storePath, heldForWindow, intent }));
        await trx
          .insertInto("deployments")
          .values({ id: write.deploymentId, created_at_ms: write.nowMs, targets: JSON.stringify(recorded), requested_by: write.requestedBy })
          .execute();
      }
      await this.events.append(
        trx,
        targets.map((target) => ({
          atMs: write.nowMs,
          hostName: target.hostName,
          kind: DESIRED_ASSIGNED,
          data: assignedEventData(write, target, (assigned.get(target.hostName) as HostRecord).desiredSerial),
        })),
      );
    });
    return targets.map((target) => assigned.get(target.hostName) as HostRecord);
  }

  async listHeld(): Promise<HostRecord[]> {
    return (await this.db.selectFrom("hosts").selectAll().where("held_for_window", "=", 1).orderBy("name").execute()).map(toRecord);
  }

  async releaseHeld(given: string, deploymentId: string): Promise<HostRecord | undefined> {
    const name = assertHostName(given);
    // A new serial: the agent already finished the fetch-only one and ignores anything not newer.
    const released = await this.db.transaction().execute(async (trx) => {
      const seq = await this.tick(trx);
      return trx
        .updateTable("hosts")
        .set((eb) => ({
          desired_serial: eb("desired_serial", "+", 1),
          desired_activate: 1,
          held_for_window: 0,
          phase: HostPhase.HOST_PHASE_PENDING,
          last_error_code: "",
          last_error_message: "",
          last_error_output: "",
          change_seq: seq,
        }))
        .where("name", "=", name)
        .where("held_for_window", "=", 1)
        .where("deployment_id", "=", deploymentId)
        .returningAll()
        .executeTakeFirst();
    });
    return released && toRecord(released);
  }

  async recordReport(given: string, report: HostReport): Promise<HostRecord> {
    const name = assertHostName(given);
    if ((await this.writeReports([{ name, report }])).size === 0) throw new FerryError("E_UNKNOWN_HOST", `unknown host ${name}`);
    return this.mustGet(name);
  }

  async recordReports(entries: readonly HostReportEntry[]): Promise<void> {
    await this.writeReports(entries.map((entry) => ({ ...entry, name: assertHostName(entry.name) })));
  }

  /** Returns the names of the hosts that exist; reports of others are dropped. */
  private async writeReports(entries: readonly HostReportEntry[]): Promise<Set<string>> {
    // Rounds keep each host's reports in the order they came: round k holds each host's k-th report.
    const rounds: HostReportEntry[][] = [];
    const seen = new Map<string, number>();
    for (const entry of entries) {
      const round = seen.get(entry.name) ?? 0;
      seen.set(entry.name, round + 1);
      (rounds[round] ??= []).push(entry);
    }
    return this.db.transaction().execute(async (trx) => {
      const seq = await this.tick(trx);
      const existing = new Set<string>();
      for (const round of rounds) {
        // Reports setting the same values (a wave's phase changes) are one statement.
        const writes = round.map(({ name, report }) => ({ name, columns: reportColumns(report) }));
        // Heartbeats written in a batch differ only in their times: one statement per 500 hosts, values joined in.
        const isSeenOnly = (columns: ReportColumns): boolean => Object.keys(columns).length === 1 && columns.last_seen_ms !== undefined;
        const seenOnly = writes.filter(({ columns }) => isSeenOnly(columns)).map(({ name, columns }) => ({ name, ms: columns.last_seen_ms as number }));
        const groups = groupBy(
          writes.filter(({ columns }) => !isSeenOnly(columns)),
          ({ columns }) => JSON.stringify(columns),
        );
        for await (const part of slices(seenOnly, 500)) {
          const rows = await sql<{ name: string }>`UPDATE hosts SET last_seen_ms = CAST(seen.column2 AS BIGINT), change_seq = ${seq}
              FROM (VALUES ${sql.join(part.map((entry) => sql`(${entry.name}, ${entry.ms})`))}) AS seen
              WHERE hosts.name = seen.column1 RETURNING hosts.name`.execute(trx);
          for (const row of rows.rows) existing.add(row.name);
        }
        for (const group of groups.values()) {
          const { columns } = group[0] as (typeof group)[number];
          for await (const part of slices(
            group.map(({ name }) => name),
            NAMES_PER_STATEMENT,
          )) {
            const rows = await trx
              .updateTable("hosts")
              .set((eb) => ({
                ...columns,
                change_seq: seq,
                // The right-hand sides see the row as it was before this UPDATE.
                ...(columns.current_system === undefined
                  ? {}
                  : {
                      previous_system: eb
                        .case()
                        .when("current_system", "not in", ["", columns.current_system])
                        .then(eb.ref("current_system"))
                        .else(eb.ref("previous_system"))
                        .end(),
                    }),
              }))
              .where("name", "in", part)
              .returning("name")
              .execute();
            for (const row of rows) existing.add(row.name);
          }
        }
      }
      const events = entries
        .filter((entry) => entry.event && existing.has(entry.name))
        .map((entry) => ({ ...(entry.event as Omit<HostEvent, "hostName">), hostName: entry.name }));
      await this.events.append(trx, events);
      return existing;
    });
  }

  async raiseSerialFloor(given: string, serial: number): Promise<HostRecord> {
    const name = assertHostName(given);
    await this.db
      .updateTable("hosts")
      .set({ desired_serial: serial, applied_serial: serial })
      .where("name", "=", name)
      .where("desired_serial", "<", serial)
      .execute();
    return this.mustGet(name);
  }

  async pruneEvents(olderThanMs: number): Promise<number> {
    return this.events.prune(olderThanMs);
  }

  async listEventsOfKind(kind: string, limit: number): Promise<HostEvent[]> {
    return this.events.listOfKind(kind, limit);
  }

  async listEvents(hostName: string, limit: number): Promise<HostEvent[]> {
    return this.events.list(assertHostName(hostName), limit);
  }

  async changesSince(seq: number): Promise<HostChanges> {
    // The clock first: every change numbered up to it has committed (see tick), later ones are read next time.
    const { value } = await this.db.selectFrom("change_clock").select("value").where("id", "=", 1).executeTakeFirstOrThrow();
    if (value <= seq) return { hosts: [], seq: value };
    const rows = await this.db.selectFrom("hosts").selectAll().where("change_seq", ">", seq).where("change_seq", "<=", value).execute();
    return { hosts: rows.map(toRecord), seq: value };
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}
