import type { Generated, Kysely } from "kysely";

/**
 * The controller's tables as both backends hold them. Flags are 0/1
 * integers and lists are JSON text on both, so that one set of queries reads
 * the same values from SQLite and PostgreSQL.
 */
export interface HostsTable {
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
  /** The change clock's value when the row last changed: replicas read what changed after the value they saw (changesSince). */
  change_seq: number;
}

export interface DeploymentsTable {
  id: string;
  created_at_ms: number;
  targets: string;
  requested_by: string;
}

export interface EventsTable {
  id: Generated<number>;
  at_ms: number;
  host_name: string;
  kind: string;
  data: string;
}

export interface RolloutsTable {
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

export interface RolloutHostsTable {
  rollout_id: string;
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

export interface MaintenanceWindowsTable {
  id: string;
  host_name: string;
  tag: string;
  cron: string;
  duration_ms: number;
  timezone: string;
}

export interface OperatorTokensTable {
  name: string;
  token_hash: string;
  scopes: string;
  tags: string;
  environments: string;
  created_at_ms: number;
  created_by: string;
  expires_at_ms: number;
  revoked_at_ms: number;
  rotated_at_ms: number;
  builtin: number;
}

export interface AuditTable {
  id: Generated<number>;
  at_ms: number;
  actor: string;
  action: string;
  target: string;
  detail: string;
}

export interface BundleImportsTable {
  site: string;
  sequence: number;
  manifest_sha256: string;
  created_at: string;
  imported_at_ms: number;
  signer: string;
  hosts: string;
}

export interface BundleFloorTable {
  id: number;
  sequence: number;
}

/** One row: bumped first by every transaction that changes hosts, so its values follow commit order. */
export interface ChangeClockTable {
  id: number;
  value: number;
}

export interface RolloutCommandsTable {
  id: Generated<number>;
  rollout_id: string;
  action: string;
  reason: string;
  accept_failing_checks: number;
  created_at_ms: number;
  /** pending → running → done | failed; pending → expired when nobody took it in time. */
  state: string;
  error_code: string;
  error_message: string;
}

export interface Schema {
  hosts: HostsTable;
  deployments: DeploymentsTable;
  events: EventsTable;
  rollouts: RolloutsTable;
  rollout_hosts: RolloutHostsTable;
  maintenance_windows: MaintenanceWindowsTable;
  operator_tokens: OperatorTokensTable;
  audit: AuditTable;
  bundle_imports: BundleImportsTable;
  bundle_floor: BundleFloorTable;
  change_clock: ChangeClockTable;
  rollout_commands: RolloutCommandsTable;
}

export type SqlDialect = "sqlite" | "postgres";

/** The database, or a transaction on it: the sub-stores write inside their caller's transaction through this. */
export type Db = Kysely<Schema>;

/**
 * Bound parameters per statement stay far below both backends' limits
 * (SQLite 32766, PostgreSQL 65535) and keep each statement short.
 */
export const NAMES_PER_STATEMENT = 1000;
