import type { Selectable } from "kysely";
import { FerryError, assertHostName, assertStorePath, groupBy, slices } from "@ferry/core";
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
import { NAMES_PER_STATEMENT, type Db, type RolloutHostsTable, type RolloutsTable } from "./sql-schema.js";

function rolloutColumns(patch: RolloutPatch): Partial<RolloutsTable> {
  const columns: Partial<RolloutsTable> = {};
  if (patch.state !== undefined) columns.state = patch.state;
  if (patch.currentWave !== undefined) columns.current_wave = patch.currentWave;
  if (patch.reason !== undefined) columns.reason = patch.reason;
  if (patch.phaseStartedAtMs !== undefined) columns.phase_started_at_ms = patch.phaseStartedAtMs;
  if (patch.resumeAtMs !== undefined) columns.resume_at_ms = patch.resumeAtMs;
  if (patch.policy !== undefined) columns.policy = JSON.stringify(patch.policy);
  return columns;
}

function hostColumns(patch: RolloutHostPatch): Partial<RolloutHostsTable> {
  const columns: Partial<RolloutHostsTable> = {};
  if (patch.state !== undefined) columns.state = patch.state;
  if (patch.errorCode !== undefined) columns.error_code = patch.errorCode;
  if (patch.errorMessage !== undefined) columns.error_message = patch.errorMessage;
  return columns;
}

function toHost(row: Selectable<RolloutHostsTable>): RolloutHostRecord {
  return {
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
  };
}

/** Rollouts never finished are few; a host of one never takes part in two at once. */
const UNFINISHED_HOST_STATES = ["reverting", "activating", "boot-pending", "prefetching"];

export class SqlRolloutStore implements RolloutStore {
  constructor(private readonly db: Db) {}

  private async withHosts(rows: readonly Selectable<RolloutsTable>[]): Promise<RolloutRecord[]> {
    const hostRows: Selectable<RolloutHostsTable>[] = [];
    for await (const part of slices(
      rows.map((row) => row.id),
      NAMES_PER_STATEMENT,
    )) {
      hostRows.push(...(await this.db.selectFrom("rollout_hosts").selectAll().where("rollout_id", "in", part).orderBy("wave").orderBy("name").execute()));
    }
    const hosts = groupBy(hostRows, (row) => row.rollout_id);
    return rows.map((row) => ({
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
      hosts: (hosts.get(row.id) ?? []).map(toHost),
    }));
  }

  async createRollout(rollout: RolloutRecord): Promise<void> {
    const hosts = rollout.hosts.map((host) => ({
      rollout_id: rollout.id,
      name: assertHostName(host.name),
      store_path: assertStorePath(host.storePath),
      wave: host.wave,
      state: host.state,
      serial: host.serial,
      error_code: host.errorCode,
      error_message: host.errorMessage,
      previous_system: host.previousSystem,
      updated_at_ms: host.updatedAtMs,
      intent: encodeStoredIntent(host.intent),
    }));
    await this.db.transaction().execute(async (trx) => {
      await trx
        .insertInto("rollouts")
        .values({
          id: rollout.id,
          state: rollout.state,
          environment: rollout.environment,
          manifest_digest: rollout.manifestDigest,
          policy: JSON.stringify(rollout.policy),
          wave_count: rollout.waveCount,
          current_wave: rollout.currentWave,
          reason: rollout.reason,
          requested_by: rollout.requestedBy,
          created_at_ms: rollout.createdAtMs,
          updated_at_ms: rollout.updatedAtMs,
          phase_started_at_ms: rollout.phaseStartedAtMs,
          resume_at_ms: rollout.resumeAtMs,
          mode: rollout.mode,
        })
        .execute();
      // 11 values a row: 500 rows stay far below either backend's parameter limit.
      for await (const part of slices(hosts, 500)) await trx.insertInto("rollout_hosts").values(part).execute();
    });
  }

  async getRollout(id: string): Promise<RolloutRecord> {
    const row = await this.db.selectFrom("rollouts").selectAll().where("id", "=", id).executeTakeFirst();
    if (!row) throw new FerryError("E_UNKNOWN_ROLLOUT", `unknown rollout ${JSON.stringify(id.slice(0, 80))}`);
    return (await this.withHosts([row]))[0] as RolloutRecord;
  }

  async listRollouts(limit: number): Promise<RolloutRecord[]> {
    return this.withHosts(await this.db.selectFrom("rollouts").selectAll().orderBy("created_at_ms", "desc").orderBy("id", "desc").limit(limit).execute());
  }

  async activeRollouts(): Promise<RolloutRecord[]> {
    const rows = await this.db
      .selectFrom("rollouts")
      .selectAll()
      .where((eb) =>
        eb.or([
          eb("state", "not in", ["completed", "aborted"]),
          eb("id", "in", eb.selectFrom("rollout_hosts").select("rollout_id").where("state", "in", UNFINISHED_HOST_STATES)),
        ]),
      )
      .orderBy("created_at_ms")
      .execute();
    return this.withHosts(rows);
  }

  async rolloutsUpdatedSince(sinceMs: number): Promise<RolloutRecord[]> {
    return this.withHosts(await this.db.selectFrom("rollouts").selectAll().where("updated_at_ms", ">=", sinceMs).orderBy("created_at_ms").execute());
  }

  async updateRollout(id: string, patch: RolloutPatch, nowMs: number): Promise<void> {
    const columns = rolloutColumns(patch);
    if (Object.keys(columns).length === 0) return;
    await this.db
      .updateTable("rollouts")
      .set({ ...columns, updated_at_ms: nowMs })
      .where("id", "=", id)
      .execute();
  }

  async updateRolloutHosts(id: string, patches: readonly { name: string; patch: RolloutHostPatch }[], nowMs: number): Promise<void> {
    // Hosts given the same change (a wave confirmed) are one statement.
    // Applying a host's patches in order is the same as applying them merged, later fields winning.
    const merged = new Map<string, Partial<RolloutHostsTable>>();
    for (const { name, patch } of patches) {
      const checked = assertHostName(name);
      merged.set(checked, { ...merged.get(checked), ...hostColumns(patch) });
    }
    const groups = groupBy(
      [...merged].filter(([, columns]) => Object.keys(columns).length > 0),
      ([, columns]) => JSON.stringify(columns),
    );
    if (groups.size === 0) return;
    // One transaction for a whole step of the engine: a wave of a thousand hosts is one sync, not a thousand.
    await this.db.transaction().execute(async (trx) => {
      for (const group of groups.values()) {
        const [, columns] = group[0] as (typeof group)[number];
        for await (const part of slices(
          group.map(([name]) => name),
          NAMES_PER_STATEMENT,
        )) {
          await trx
            .updateTable("rollout_hosts")
            .set({ ...columns, updated_at_ms: nowMs })
            .where("rollout_id", "=", id)
            .where("name", "in", part)
            .execute();
        }
      }
      await trx.updateTable("rollouts").set({ updated_at_ms: nowMs }).where("id", "=", id).execute();
    });
  }

  async findCompletedRollout(manifestDigest: string, environment: string): Promise<RolloutRecord | undefined> {
    const row = await this.db
      .selectFrom("rollouts")
      .selectAll()
      .where("manifest_digest", "=", manifestDigest)
      .where("environment", "=", environment)
      .where("state", "=", "completed")
      .orderBy("created_at_ms", "desc")
      .limit(1)
      .executeTakeFirst();
    return row && (await this.withHosts([row]))[0];
  }

  async addWindow(window: MaintenanceWindowRecord): Promise<void> {
    await this.db
      .insertInto("maintenance_windows")
      .values({
        id: window.id,
        host_name: window.hostName && assertHostName(window.hostName),
        tag: window.tag,
        cron: window.cron,
        duration_ms: window.durationMs,
        timezone: window.timezone,
      })
      .execute();
  }

  async listWindows(): Promise<MaintenanceWindowRecord[]> {
    const rows = await this.db.selectFrom("maintenance_windows").selectAll().orderBy("id").execute();
    return rows.map((row) => ({ id: row.id, hostName: row.host_name, tag: row.tag, cron: row.cron, durationMs: row.duration_ms, timezone: row.timezone }));
  }

  async removeWindow(id: string): Promise<void> {
    const { numDeletedRows } = await this.db.deleteFrom("maintenance_windows").where("id", "=", id).executeTakeFirst();
    if (numDeletedRows === 0n) throw new FerryError("E_UNKNOWN_WINDOW", `unknown maintenance window ${JSON.stringify(id.slice(0, 80))}`);
  }
}
