import type Database from "better-sqlite3";
import { FerryError, assertHostName, assertStorePath } from "@ferry/core";
import type { ActivationMode } from "@ferry/protocol";
import { decodeStoredIntent, encodeStoredIntent } from "./stored-intent.js";
import type {
  MaintenanceWindowRecord,
  RolloutHostPatch,
  RolloutHostRecord,
  RolloutHostState,
  RolloutPatch,
  RolloutRecord,
  RolloutStore,
} from "./rollout-records.js";

export const ROLLOUT_MIGRATION = `
  ALTER TABLE hosts ADD COLUMN desired_activate INTEGER NOT NULL DEFAULT 1;
  ALTER TABLE hosts ADD COLUMN rollout_id TEXT NOT NULL DEFAULT '';
  CREATE TABLE rollouts (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    environment TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    policy TEXT NOT NULL,
    wave_count INTEGER NOT NULL,
    current_wave INTEGER NOT NULL,
    reason TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    phase_started_at_ms INTEGER NOT NULL,
    resume_at_ms INTEGER NOT NULL
  );
  CREATE TABLE rollout_hosts (
    rollout_id TEXT NOT NULL REFERENCES rollouts (id),
    name TEXT NOT NULL,
    store_path TEXT NOT NULL,
    wave INTEGER NOT NULL,
    state TEXT NOT NULL,
    serial INTEGER NOT NULL,
    error_code TEXT NOT NULL,
    error_message TEXT NOT NULL,
    previous_system TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (rollout_id, name)
  );
  CREATE TABLE maintenance_windows (
    id TEXT PRIMARY KEY,
    host_name TEXT NOT NULL,
    tag TEXT NOT NULL,
    cron TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    timezone TEXT NOT NULL
  );`;

interface RolloutRow {
  id: string;
  state: string;
  environment: string;
  manifest_digest: string;
  policy: string;
  wave_count: number;
  current_wave: number;
  reason: string;
  requested_by: string;
  created_at_ms: number;
  updated_at_ms: number;
  phase_started_at_ms: number;
  resume_at_ms: number;
  mode: number;
}

interface RolloutHostRow {
  name: string;
  store_path: string;
  wave: number;
  state: string;
  serial: number;
  error_code: string;
  error_message: string;
  previous_system: string;
  updated_at_ms: number;
  intent: string;
}

const PATCH_COLUMNS: Record<string, string> = {
  state: "state",
  currentWave: "current_wave",
  reason: "reason",
  phaseStartedAtMs: "phase_started_at_ms",
  resumeAtMs: "resume_at_ms",
  errorCode: "error_code",
  errorMessage: "error_message",
  policy: "policy",
};

function assignments(patch: object): { sql: string; values: unknown[] } {
  const entries = Object.entries(patch).filter(([, value]) => value !== undefined);
  return {
    sql: entries.map(([key]) => `${PATCH_COLUMNS[key] as string} = ?`).join(", "),
    values: entries.map(([, value]) => (typeof value === "object" ? JSON.stringify(value) : value)),
  };
}

export class SqliteRolloutStore implements RolloutStore {
  constructor(private readonly db: Database.Database) {}

  private hostsOf(id: string): RolloutHostRecord[] {
    const rows = this.db.prepare("SELECT * FROM rollout_hosts WHERE rollout_id = ? ORDER BY wave, name").all(id) as RolloutHostRow[];
    return rows.map((row) => ({
      name: row.name,
      storePath: row.store_path,
      wave: row.wave,
      state: row.state as RolloutHostState,
      serial: row.serial,
      errorCode: row.error_code,
      errorMessage: row.error_message,
      previousSystem: row.previous_system,
      updatedAtMs: row.updated_at_ms,
      intent: decodeStoredIntent(row.intent),
    }));
  }

  private toRecord(row: RolloutRow): RolloutRecord {
    return {
      id: row.id,
      state: row.state as RolloutRecord["state"],
      environment: row.environment,
      manifestDigest: row.manifest_digest,
      // Rollouts stored before a policy key existed read as its default.
      policy: { acceptFailingChecks: false, ...(JSON.parse(row.policy) as Partial<RolloutRecord["policy"]>) } as RolloutRecord["policy"],
      mode: row.mode as ActivationMode,
      waveCount: row.wave_count,
      currentWave: row.current_wave,
      reason: row.reason,
      requestedBy: row.requested_by,
      createdAtMs: row.created_at_ms,
      updatedAtMs: row.updated_at_ms,
      phaseStartedAtMs: row.phase_started_at_ms,
      resumeAtMs: row.resume_at_ms,
      hosts: this.hostsOf(row.id),
    };
  }

  async createRollout(rollout: RolloutRecord): Promise<void> {
    const insertHost = this.db.prepare(
      `INSERT INTO rollout_hosts (rollout_id, name, store_path, wave, state, serial, error_code, error_message, previous_system, updated_at_ms, intent)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.db.transaction(() => {
      this.db
        .prepare(
          `INSERT INTO rollouts (id, state, environment, manifest_digest, policy, wave_count, current_wave, reason, requested_by, created_at_ms, updated_at_ms, phase_started_at_ms, resume_at_ms, mode)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          rollout.id,
          rollout.state,
          rollout.environment,
          rollout.manifestDigest,
          JSON.stringify(rollout.policy),
          rollout.waveCount,
          rollout.currentWave,
          rollout.reason,
          rollout.requestedBy,
          rollout.createdAtMs,
          rollout.updatedAtMs,
          rollout.phaseStartedAtMs,
          rollout.resumeAtMs,
          rollout.mode,
        );
      for (const host of rollout.hosts) {
        insertHost.run(
          rollout.id,
          assertHostName(host.name),
          assertStorePath(host.storePath),
          host.wave,
          host.state,
          host.serial,
          host.errorCode,
          host.errorMessage,
          host.previousSystem,
          host.updatedAtMs,
          encodeStoredIntent(host.intent),
        );
      }
    })();
  }

  async getRollout(id: string): Promise<RolloutRecord> {
    const row = this.db.prepare("SELECT * FROM rollouts WHERE id = ?").get(id) as RolloutRow | undefined;
    if (!row) throw new FerryError("E_UNKNOWN_ROLLOUT", `unknown rollout ${JSON.stringify(id.slice(0, 80))}`);
    return this.toRecord(row);
  }

  async listRollouts(limit: number): Promise<RolloutRecord[]> {
    const rows = this.db.prepare("SELECT * FROM rollouts ORDER BY created_at_ms DESC, id DESC LIMIT ?").all(limit) as RolloutRow[];
    return rows.map((row) => this.toRecord(row));
  }

  async activeRollouts(): Promise<RolloutRecord[]> {
    const rows = this.db
      .prepare(
        `SELECT * FROM rollouts WHERE state NOT IN ('completed', 'aborted')
           OR id IN (SELECT rollout_id FROM rollout_hosts WHERE state IN ('reverting', 'activating', 'boot-pending', 'prefetching')) ORDER BY created_at_ms`,
      )
      .all() as RolloutRow[];
    return rows.map((row) => this.toRecord(row));
  }

  async rolloutsUpdatedSince(sinceMs: number): Promise<RolloutRecord[]> {
    const rows = this.db.prepare("SELECT * FROM rollouts WHERE updated_at_ms >= ? ORDER BY created_at_ms").all(sinceMs) as RolloutRow[];
    return rows.map((row) => this.toRecord(row));
  }

  async updateRollout(id: string, patch: RolloutPatch, nowMs: number): Promise<void> {
    const { sql, values } = assignments(patch);
    if (!sql) return;
    this.db.prepare(`UPDATE rollouts SET ${sql}, updated_at_ms = ? WHERE id = ?`).run(...values, nowMs, id);
  }

  async updateRolloutHosts(id: string, patches: readonly { name: string; patch: RolloutHostPatch }[], nowMs: number): Promise<void> {
    const checked = patches.map(({ name, patch }) => ({ name: assertHostName(name), ...assignments(patch) })).filter((entry) => entry.sql !== "");
    if (checked.length === 0) return;
    // One transaction for a whole step of the engine: a wave of a thousand hosts is one sync, not a thousand.
    this.db.transaction(() => {
      for (const { name, sql, values } of checked) {
        this.db.prepare(`UPDATE rollout_hosts SET ${sql}, updated_at_ms = ? WHERE rollout_id = ? AND name = ?`).run(...values, nowMs, id, name);
      }
      this.db.prepare("UPDATE rollouts SET updated_at_ms = ? WHERE id = ?").run(nowMs, id);
    })();
  }

  async findCompletedRollout(manifestDigest: string, environment: string): Promise<RolloutRecord | undefined> {
    const row = this.db
      .prepare("SELECT * FROM rollouts WHERE manifest_digest = ? AND environment = ? AND state = 'completed' ORDER BY created_at_ms DESC LIMIT 1")
      .get(manifestDigest, environment) as RolloutRow | undefined;
    return row && this.toRecord(row);
  }

  async addWindow(window: MaintenanceWindowRecord): Promise<void> {
    this.db
      .prepare("INSERT INTO maintenance_windows (id, host_name, tag, cron, duration_ms, timezone) VALUES (?, ?, ?, ?, ?, ?)")
      .run(window.id, window.hostName && assertHostName(window.hostName), window.tag, window.cron, window.durationMs, window.timezone);
  }

  async listWindows(): Promise<MaintenanceWindowRecord[]> {
    const rows = this.db.prepare("SELECT * FROM maintenance_windows ORDER BY id").all() as {
      id: string;
      host_name: string;
      tag: string;
      cron: string;
      duration_ms: number;
      timezone: string;
    }[];
    return rows.map((row) => ({ id: row.id, hostName: row.host_name, tag: row.tag, cron: row.cron, durationMs: row.duration_ms, timezone: row.timezone }));
  }

  async removeWindow(id: string): Promise<void> {
    const { changes } = this.db.prepare("DELETE FROM maintenance_windows WHERE id = ?").run(id);
    if (changes === 0) throw new FerryError("E_UNKNOWN_WINDOW", `unknown maintenance window ${JSON.stringify(id.slice(0, 80))}`);
  }
}
