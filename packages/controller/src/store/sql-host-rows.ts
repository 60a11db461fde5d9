import type { Selectable } from "kysely";
import type { ActivationMode, HostPhase } from "@ferry/protocol";
import { decodeStoredIntent } from "./stored-intent.js";
import type { HostRecord, HostReport } from "./state-store.js";
import type { HostsTable } from "./sql-schema.js";

export type HostRow = Selectable<HostsTable>;
export type ReportColumns = Partial<
  Pick<
    HostsTable,
    | "current_system"
    | "phase"
    | "applied_serial"
    | "last_seen_ms"
    | "last_error_code"
    | "last_error_message"
    | "last_error_output"
    | "agent_version"
    | "checks_failing"
    | "checks_run"
  >
>;

export function reportColumns(report: HostReport): ReportColumns {
  const columns: ReportColumns = {};
  if (report.currentSystem !== undefined) columns.current_system = report.currentSystem;
  if (report.phase !== undefined) columns.phase = report.phase;
  if (report.appliedSerial !== undefined) columns.applied_serial = report.appliedSerial;
  if (report.lastSeenMs !== undefined) columns.last_seen_ms = report.lastSeenMs;
  if (report.lastErrorCode !== undefined) columns.last_error_code = report.lastErrorCode;
  if (report.lastErrorMessage !== undefined) columns.last_error_message = report.lastErrorMessage;
  if (report.lastErrorOutput !== undefined) columns.last_error_output = report.lastErrorOutput;
  if (report.agentVersion !== undefined) columns.agent_version = report.agentVersion;
  if (report.checksFailingBeforeAndAfter !== undefined) columns.checks_failing = JSON.stringify(report.checksFailingBeforeAndAfter);
  if (report.checksRun !== undefined) columns.checks_run = report.checksRun;
  return columns;
}

export function toRecord(row: HostRow): HostRecord {
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
