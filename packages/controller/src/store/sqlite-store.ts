import Database from "better-sqlite3";
import { FerryError, assertHostName, assertStorePath } from "@ferry/core";
import { ActivationMode, HostPhase } from "@ferry/protocol";
import type { DeploymentTarget, HostEvent, HostRecord, HostReport, StateStore } from "./state-store.js";
import { ROLLOUT_MIGRATION, SqliteRolloutStore } from "./sqlite-rollouts.js";

/** Each entry upgrades the schema by one version; never edit a shipped entry. */
const MIGRATIONS: readonly (string | ((db: Database.Database) => void))[] = [
  `CREATE TABLE hosts (
     name TEXT PRIMARY KEY,
     token_hash TEXT NOT NULL,
     tags TEXT NOT NULL DEFAULT '[]',
     created_at_ms INTEGER NOT NULL,
     desired_system TEXT NOT NULL DEFAULT '',
     desired_serial INTEGER NOT NULL DEFAULT 0,
     deployment_id TEXT NOT NULL DEFAULT '',
     activation_mode INTEGER NOT NULL DEFAULT ${ActivationMode.ACTIVATION_MODE_SWITCH},
     current_system TEXT NOT NULL DEFAULT '',
     phase INTEGER NOT NULL DEFAULT ${HostPhase.HOST_PHASE_IDLE},
     applied_serial INTEGER NOT NULL DEFAULT 0,
     last_seen_ms INTEGER NOT NULL DEFAULT 0,
     last_error_code TEXT NOT NULL DEFAULT '',
     last_error_message TEXT NOT NULL DEFAULT '',
     last_error_output TEXT NOT NULL DEFAULT '',
     agent_version TEXT NOT NULL DEFAULT ''
   );
   CREATE TABLE deployments (
     id TEXT PRIMARY KEY,
     created_at_ms INTEGER NOT NULL,
     targets TEXT NOT NULL
   );
   CREATE TABLE events (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     at_ms INTEGER NOT NULL,
     host_name TEXT NOT NULL,
     kind TEXT NOT NULL,
     data TEXT NOT NULL
   );
   CREATE INDEX events_by_host ON events (host_name, id);`,
  ROLLOUT_MIGRATION,
  lowerCaseHostNames,
];

/**
 * Host names ignore case (assertHostName returns them in lower case), but
 * earlier versions stored them as typed. Two hosts differing only in case
 * cannot be merged without choosing whose token and history win, so the
 * controller refuses to start and says how to remove one. The unique index
 * keeps any later code path from storing such a pair again.
 */
function lowerCaseHostNames(db: Database.Database): void {
  const clashes = db.prepare("SELECT json_group_array(name) AS names FROM hosts GROUP BY lower(name) HAVING count(*) > 1").all() as { names: string }[];
  if (clashes.length > 0) {
    const groups = clashes.map((row) => (JSON.parse(row.names) as string[]).map((name) => JSON.stringify(name)).join(" and "));
    const example = (JSON.parse((clashes[0] as { names: string }).names) as string[])[0] as string;
    throw new FerryError(
      "E_HOST_CASE_CLASH",
      `hosts ${groups.join("; ")} differ only in letter case, and host names now ignore case; keep one of each: ` +
        `remove the others with the previous Ferry version (ferry host remove NAME) or with: sqlite3 ${db.name} "DELETE FROM hosts WHERE name = '${example}'"`,
    );
  }
  db.exec(`UPDATE hosts SET name = lower(name);
    UPDATE events SET host_name = lower(host_name);
    UPDATE OR IGNORE rollout_hosts SET name = lower(name);
    UPDATE maintenance_windows SET host_name = lower(host_name);
    CREATE UNIQUE INDEX hosts_name_ignoring_case ON hosts (lower(name));`);
}

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
  phase: number;
  applied_serial: number;
  last_seen_ms: number;
  last_error_code: string;
  last_error_message: string;
  last_error_output: string;
  agent_version: string;
  desired_activate: number;
  rollout_id: string;
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
    phase: row.phase as HostPhase,
    appliedSerial: row.applied_serial,
    lastSeenMs: row.last_seen_ms,
    lastErrorCode: row.last_error_code,
    lastErrorMessage: row.last_error_message,
    lastErrorOutput: row.last_error_output,
    agentVersion: row.agent_version,
    desiredActivate: row.desired_activate === 1,
    rolloutId: row.rollout_id,
  };
}

export class SqliteStateStore implements StateStore {
  private readonly db: Database.Database;
  readonly rollouts: SqliteRolloutStore;

  constructor(file: string) {
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
  }

  private migrate(): void {
    const version = this.db.pragma("user_version", { simple: true }) as number;
    for (let next = version; next < MIGRATIONS.length; next++) {
      this.db.transaction(() => {
        const migration = MIGRATIONS[next] as string | ((db: Database.Database) => void);
        if (typeof migration === "string") this.db.exec(migration);
        else migration(this.db);
        this.db.pragma(`user_version = ${next + 1}`);
      })();
    }
  }

  private row(name: string): HostRow | undefined {
    return this.db.prepare("SELECT * FROM hosts WHERE name = ?").get(name) as HostRow | undefined;
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
      .prepare("INSERT INTO hosts (name, token_hash, tags, created_at_ms) VALUES (?, ?, ?, ?)")
      .run(name, tokenHash, JSON.stringify([...new Set(tags)].sort()), nowMs);
    return this.mustGet(name);
  }

  async removeHost(given: string): Promise<void> {
    const name = assertHostName(given);
    const { changes } = this.db.prepare("DELETE FROM hosts WHERE name = ?").run(name);
    if (changes === 0) throw new FerryError("E_UNKNOWN_HOST", `unknown host ${name}`);
  }

  async getHost(given: string): Promise<HostRecord | undefined> {
    const name = assertHostName(given);
    const row = this.row(name);
    return row && toRecord(row);
  }

  async listHosts(names: readonly string[] = []): Promise<HostRecord[]> {
    if (names.length === 0) {
      return (this.db.prepare("SELECT * FROM hosts ORDER BY name").all() as HostRow[]).map(toRecord);
    }
    return names.map((name) => this.mustGet(assertHostName(name)));
  }

  async recordDeployment(deploymentId: string, given: readonly DeploymentTarget[], mode: ActivationMode, nowMs: number): Promise<HostRecord[]> {
    const targets = given.map((target) => ({ hostName: assertHostName(target.hostName), storePath: assertStorePath(target.storePath) }));
    const update = this.db.prepare(
      `UPDATE hosts SET desired_system = ?, desired_serial = desired_serial + 1, deployment_id = ?, activation_mode = ?, desired_activate = 1, rollout_id = '',
         phase = ?, last_error_code = '', last_error_message = '', last_error_output = '' WHERE name = ?`,
    );
    return this.db.transaction(() => {
      for (const target of targets) {
        const { changes } = update.run(target.storePath, deploymentId, mode, HostPhase.HOST_PHASE_PENDING, target.hostName);
        if (changes === 0) throw new FerryError("E_UNKNOWN_HOST", `unknown host ${target.hostName}`);
      }
      this.db.prepare("INSERT INTO deployments (id, created_at_ms, targets) VALUES (?, ?, ?)").run(deploymentId, nowMs, JSON.stringify(targets));
      return targets.map((target) => this.mustGet(target.hostName));
    })();
  }

  async recordReport(given: string, report: HostReport): Promise<HostRecord> {
    const name = assertHostName(given);
    const entries = Object.entries(report).filter(([, value]) => value !== undefined) as [keyof HostReport, string | number][];
    if (entries.length > 0) {
      const assignments = entries.map(([key]) => `${REPORT_COLUMNS[key]} = ?`).join(", ");
      const { changes } = this.db.prepare(`UPDATE hosts SET ${assignments} WHERE name = ?`).run(...entries.map(([, value]) => value), name);
      if (changes === 0) throw new FerryError("E_UNKNOWN_HOST", `unknown host ${name}`);
    }
    return this.mustGet(name);
  }

  async raiseSerialFloor(given: string, serial: number): Promise<HostRecord> {
    const name = assertHostName(given);
    this.db.prepare("UPDATE hosts SET desired_serial = ?, applied_serial = ? WHERE name = ? AND desired_serial < ?").run(serial, serial, name, serial);
    return this.mustGet(name);
  }

  async appendEvent(event: HostEvent): Promise<void> {
    this.db
      .prepare("INSERT INTO events (at_ms, host_name, kind, data) VALUES (?, ?, ?, ?)")
      .run(event.atMs, assertHostName(event.hostName), event.kind, JSON.stringify(event.data));
  }

  async listEvents(hostName: string, limit: number): Promise<HostEvent[]> {
    const rows = this.db
      .prepare("SELECT at_ms, host_name, kind, data FROM events WHERE host_name = ? ORDER BY id DESC LIMIT ?")
      .all(assertHostName(hostName), limit) as {
      at_ms: number;
      host_name: string;
      kind: string;
      data: string;
    }[];
    return rows.reverse().map((row) => ({ atMs: row.at_ms, hostName: row.host_name, kind: row.kind, data: JSON.parse(row.data) as Record<string, unknown> }));
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
