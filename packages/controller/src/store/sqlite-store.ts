import Database from "better-sqlite3";
import { FerryError, assertHostName, assertStorePath } from "@ferry/core";
import { ActivationMode, HostPhase } from "@ferry/protocol";
import { decodeStoredIntent, encodeStoredIntent } from "./stored-intent.js";
import {
  DEFAULT_HISTORY_RETENTION,
  type DesiredWrite,
  type HistoryRetention,
  type HostEvent,
  type HostRecord,
  type HostReport,
  type HostReportEntry,
  type StateStore,
} from "./state-store.js";
import { DESIRED_ASSIGNED, assignedEventData } from "./history-events.js";
import { SqliteRolloutStore } from "./sqlite-rollouts.js";
import { MIGRATIONS } from "./sqlite-migrations.js";
import { SqliteTokenStore } from "./sqlite-tokens.js";
import { SqliteAuditStore } from "./sqlite-audit.js";
import { SqliteBundleLedger } from "./sqlite-bundles.js";

interface HostRow {
  name: string;
  token_hash: string;
  tags: string;
  created_at_ms: number;
  desired_system: string;
  desired_serial: number;
  deployment_id: string;
  activation_mode: number;
  current_system: string;
  previous_system: string;
  phase: number;
  applied_serial: number;
  last_seen_ms: number;
  last_error_code: string;
  last_error_message: string;
  last_error_output: string;
  agent_version: string;
  desired_activate: number;
  rollout_id: string;
  held_for_window: number;
  checks_failing: string;
  checks_run: number;
  desired_intent: string;
}

interface EventRow {
  at_ms: number;
  host_name: string;
  kind: string;
  data: string;
}

function toEvent(row: EventRow): HostEvent {
  return { atMs: row.at_ms, hostName: row.host_name, kind: row.kind, data: JSON.parse(row.data) as Record<string, unknown> };
}

const REPORT_COLUMNS: Record<keyof HostReport, string> = {
  currentSystem: "current_system",
  phase: "phase",
  appliedSerial: "applied_serial",
  lastSeenMs: "last_seen_ms",
  lastErrorCode: "last_error_code",
  lastErrorMessage: "last_error_message",
  lastErrorOutput: "last_error_output",
  agentVersion: "agent_version",
  checksFailingBeforeAndAfter: "checks_failing",
  checksRun: "checks_run",
};

function toRecord(row: HostRow): HostRecord {
  return {
    name: row.name,
    tokenHash: row.token_hash,
    tags: JSON.parse(row.tags) as string[],
    createdAtMs: row.created_at_ms,
    desiredSystem: row.desired_system,
    desiredSerial: row.desired_serial,
    deploymentId: row.deployment_id,
    activationMode: row.activation_mode as ActivationMode,
    currentSystem: row.current_system,
    previousSystem: row.previous_system,
    phase: row.phase as HostPhase,
    appliedSerial: row.applied_serial,
    lastSeenMs: row.last_seen_ms,
    lastErrorCode: row.last_error_code,
    lastErrorMessage: row.last_error_message,
    lastErrorOutput: row.last_error_output,
    agentVersion: row.agent_version,
    desiredActivate: row.desired_activate === 1,
    rolloutId: row.rollout_id,
    heldForWindow: row.held_for_window === 1,
    checksFailingBeforeAndAfter: JSON.parse(row.checks_failing) as string[],
    checksRun: row.checks_run,
    desiredIntent: decodeStoredIntent(row.desired_intent),
  };
}

export class SqliteStateStore implements StateStore {
  private readonly db: Database.Database;
  readonly rollouts: SqliteRolloutStore;
  readonly tokens: SqliteTokenStore;
  readonly audit: SqliteAuditStore;
  readonly bundles: SqliteBundleLedger;

  private readonly eventsPerHost: number;
  /** Prepared once: preparing costs more than running these small statements. */
  private readonly statements = new Map<string, Database.Statement>();

  constructor(file: string, retention: Pick<HistoryRetention, "eventsPerHost"> = DEFAULT_HISTORY_RETENTION) {
    this.eventsPerHost = retention.eventsPerHost;
    this.db = new Database(file);
    this.db.pragma("journal_mode = WAL");
    // FULL: a result acknowledged to an agent must survive power loss.
    this.db.pragma("synchronous = FULL");
    this.db.pragma("foreign_keys = ON");
    this.db.pragma("busy_timeout = 5000");
    try {
      this.migrate();
    } catch (error) {
      this.db.close();
      throw error;
    }
    this.rollouts = new SqliteRolloutStore(this.db);
    this.tokens = new SqliteTokenStore(this.db);
    this.audit = new SqliteAuditStore(this.db);
    this.bundles = new SqliteBundleLedger(this.db);
  }

  private migrate(): void {
    const version = this.db.pragma("user_version", { simple: true }) as number;
    // One transaction for the whole upgrade: a migration that refuses (E_HOST_CASE_CLASH)
    // leaves the file exactly as the previous release wrote it.
    this.db.transaction(() => {
      for (let next = version; next < MIGRATIONS.length; next++) {
        const migration = MIGRATIONS[next] as string | ((db: Database.Database) => void);
        if (typeof migration === "string") this.db.exec(migration);
        else migration(this.db);
      }
      if (version < MIGRATIONS.length) this.db.pragma(`user_version = ${MIGRATIONS.length}`);
    })();
  }

  private statement(sql: string): Database.Statement {
    let prepared = this.statements.get(sql);
    if (!prepared) {
      prepared = this.db.prepare(sql);
      this.statements.set(sql, prepared);
    }
    return prepared;
  }

  private row(name: string): HostRow | undefined {
    return this.statement("SELECT * FROM hosts WHERE name = ?").get(name) as HostRow | undefined;
  }

  private mustGet(name: string): HostRecord {
    const row = this.row(name);
    if (!row) throw new FerryError("E_UNKNOWN_HOST", `unknown host ${name}`);
    return toRecord(row);
  }

  async addHost(given: string, tokenHash: string, tags: readonly string[], nowMs: number): Promise<HostRecord> {
    const name = assertHostName(given);
    if (this.row(name)) throw new FerryError("E_HOST_EXISTS", `host ${name} already exists`);
    this.db
      .prepare("INSERT INTO hosts (name, token_hash, tags, created_at_ms, activation_mode) VALUES (?, ?, ?, ?, ?)")
      .run(name, tokenHash, JSON.stringify([...new Set(tags)].sort()), nowMs, ActivationMode.ACTIVATION_MODE_UNSPECIFIED);
    return this.mustGet(name);
  }

  async removeHost(given: string): Promise<void> {
    const name = assertHostName(given);
    const { changes } = this.db.prepare("DELETE FROM hosts WHERE name = ?").run(name);
    if (changes === 0) throw new FerryError("E_UNKNOWN_HOST", `unknown host ${name}`);
  }

  async setHostToken(given: string, tokenHash: string): Promise<HostRecord> {
    const name = assertHostName(given);
    const { changes } = this.db.prepare("UPDATE hosts SET token_hash = ? WHERE name = ?").run(tokenHash, name);
    if (changes === 0) throw new FerryError("E_UNKNOWN_HOST", `unknown host ${name}`);
    return this.mustGet(name);
  }

  async getHost(given: string): Promise<HostRecord | undefined> {
    const name = assertHostName(given);
    const row = this.row(name);
    return row && toRecord(row);
  }

  async listHosts(names: readonly string[] = []): Promise<HostRecord[]> {
    if (names.length === 0) {
      return (this.statement("SELECT * FROM hosts ORDER BY name").all() as HostRow[]).map(toRecord);
    }
    const wanted = names.map(assertHostName);
    const byName = new Map((await this.findHosts(wanted)).map((record) => [record.name, record]));
    return wanted.map((name) => {
      const record = byName.get(name);
      if (!record) throw new FerryError("E_UNKNOWN_HOST", `unknown host ${name}`);
      return record;
    });
  }

  async listHostsAfter(name: string, limit: number): Promise<HostRecord[]> {
    return (this.statement("SELECT * FROM hosts WHERE name > ? ORDER BY name LIMIT ?").all(name, limit) as HostRow[]).map(toRecord);
  }

  async findHosts(names: readonly string[]): Promise<HostRecord[]> {
    // One query for any number of names.
    const rows = this.statement("SELECT * FROM hosts WHERE name IN (SELECT value FROM json_each(?))").all(
      JSON.stringify(names.map(assertHostName)),
    ) as HostRow[];
    return rows.map(toRecord);
  }

  async assignDesired(write: DesiredWrite): Promise<HostRecord[]> {
    const targets = write.targets.map((target) => ({ ...target, hostName: assertHostName(target.hostName), storePath: assertStorePath(target.storePath) }));
    const rolloutId = write.rollout?.id ?? "";
    // Every field of the desired system is set here: nothing is inherited from an earlier deployment.
    const update = this.statement(
      `UPDATE hosts SET desired_system = ?, desired_serial = desired_serial + 1, deployment_id = ?, activation_mode = ?, desired_activate = ?, held_for_window = ?,
         desired_intent = ?, rollout_id = ?, phase = ?, last_error_code = '', last_error_message = '', last_error_output = '' WHERE name = ?
       RETURNING desired_serial`,
    );
    const rolloutHost = this.statement(
      "UPDATE rollout_hosts SET state = ?, serial = ?, error_code = '', error_message = '', updated_at_ms = ? WHERE rollout_id = ? AND name = ?",
    );
    this.db.transaction(() => {
      if (write.bundle) this.bundles.recordIn(write.bundle);
      for (const target of targets) {
        const row = update.get(
          target.storePath,
          write.deploymentId,
          write.mode,
          target.activate && !target.heldForWindow ? 1 : 0,
          target.heldForWindow ? 1 : 0,
          encodeStoredIntent(target.intent),
          rolloutId,
          HostPhase.HOST_PHASE_PENDING,
          target.hostName,
        ) as { desired_serial: number } | undefined;
        if (!row) throw new FerryError("E_UNKNOWN_HOST", `unknown host ${target.hostName}`);
        if (write.rollout) rolloutHost.run(write.rollout.state, row.desired_serial, write.nowMs, rolloutId, target.hostName);
        this.insertEvent({ atMs: write.nowMs, hostName: target.hostName, kind: DESIRED_ASSIGNED, data: assignedEventData(write, target, row.desired_serial) });
      }
      if (write.rollout) {
        this.statement("UPDATE rollouts SET updated_at_ms = ? WHERE id = ?").run(write.nowMs, rolloutId);
      } else {
        const recorded = targets.map(({ hostName, storePath, heldForWindow, intent }) => ({ hostName, storePath, heldForWindow, intent }));
        this.statement("INSERT INTO deployments (id, created_at_ms, targets, requested_by) VALUES (?, ?, ?, ?)").run(
          write.deploymentId,
          write.nowMs,
          JSON.stringify(recorded),
          write.requestedBy,
        );
      }
    })();
    return this.listHosts(targets.map((target) => target.hostName));
  }

  async listHeld(): Promise<HostRecord[]> {
    return (this.statement("SELECT * FROM hosts WHERE held_for_window = 1 ORDER BY name").all() as HostRow[]).map(toRecord);
  }

  async releaseHeld(given: string, deploymentId: string): Promise<HostRecord | undefined> {
    const name = assertHostName(given);
    // A new serial: the agent already finished the fetch-only one and ignores anything not newer.
    const { changes } = this.db
      .prepare(
        `UPDATE hosts SET desired_serial = desired_serial + 1, desired_activate = 1, held_for_window = 0, phase = ?,
           last_error_code = '', last_error_message = '', last_error_output = '' WHERE name = ? AND held_for_window = 1 AND deployment_id = ?`,
      )
      .run(HostPhase.HOST_PHASE_PENDING, name, deploymentId);
    return changes === 0 ? undefined : this.mustGet(name);
  }

  async recordReport(given: string, report: HostReport): Promise<HostRecord> {
    const name = assertHostName(given);
    if (!this.db.transaction(() => this.writeReport(name, report))()) throw new FerryError("E_UNKNOWN_HOST", `unknown host ${name}`);
    return this.mustGet(name);
  }

  async recordReports(entries: readonly HostReportEntry[]): Promise<void> {
    const checked = entries.map((entry) => ({ ...entry, name: assertHostName(entry.name) }));
    this.db.transaction(() => {
      for (const entry of checked) {
        if (this.writeReport(entry.name, entry.report) && entry.event) this.insertEvent({ ...entry.event, hostName: entry.name });
      }
    })();
  }

  /** False when there is no such host. */
  private writeReport(name: string, report: HostReport): boolean {
    const entries = Object.entries(report).filter(([, value]) => value !== undefined) as [keyof HostReport, string | number | string[]][];
    if (entries.length === 0) return this.row(name) !== undefined;
    const assignments = entries.map(([key]) => `${REPORT_COLUMNS[key]} = ?`);
    const values = entries.map(([, value]) => (Array.isArray(value) ? JSON.stringify(value) : value));
    if (report.currentSystem !== undefined) {
      // The right-hand sides see the row as it was before this UPDATE.
      assignments.push("previous_system = CASE WHEN current_system NOT IN ('', ?) THEN current_system ELSE previous_system END");
      values.push(report.currentSystem);
    }
    // Reports name few distinct sets of columns, so these statements are few and cached.
    return this.statement(`UPDATE hosts SET ${assignments.join(", ")} WHERE name = ?`).run(...values, name).changes > 0;
  }

  async raiseSerialFloor(given: string, serial: number): Promise<HostRecord> {
    const name = assertHostName(given);
    this.db.prepare("UPDATE hosts SET desired_serial = ?, applied_serial = ? WHERE name = ? AND desired_serial < ?").run(serial, serial, name, serial);
    return this.mustGet(name);
  }

  private insertEvent(event: HostEvent): void {
    this.statement("INSERT INTO events (at_ms, host_name, kind, data) VALUES (?, ?, ?, ?)").run(
      event.atMs,
      event.hostName,
      event.kind,
      JSON.stringify(event.data),
    );
    this.statement("DELETE FROM events WHERE host_name = ? AND id <= (SELECT id FROM events WHERE host_name = ? ORDER BY id DESC LIMIT 1 OFFSET ?)").run(
      event.hostName,
      event.hostName,
      this.eventsPerHost,
    );
  }

  async pruneEvents(olderThanMs: number): Promise<number> {
    return this.db.prepare("DELETE FROM events WHERE at_ms < ?").run(olderThanMs).changes;
  }

  async listEventsOfKind(kind: string, limit: number): Promise<HostEvent[]> {
    const rows = this.statement("SELECT at_ms, host_name, kind, data FROM events WHERE kind = ? ORDER BY id DESC LIMIT ?").all(kind, limit) as EventRow[];
    return rows.map(toEvent);
  }

  async listEvents(hostName: string, limit: number): Promise<HostEvent[]> {
    const rows = this.db
      .prepare("SELECT at_ms, host_name, kind, data FROM events WHERE host_name = ? ORDER BY id DESC LIMIT ?")
      .all(assertHostName(hostName), limit) as EventRow[];
    return rows.reverse().map(toEvent);
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
