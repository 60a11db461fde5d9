import type { HostStatus } from "@ferry/protocol";
import type { HostRecord } from "../store/state-store.js";

export function toHostStatus(record: HostRecord, online: boolean): HostStatus {
  return {
    name: record.name,
    tags: record.tags,
    desiredSystem: record.desiredSystem,
    desiredSerial: record.desiredSerial,
    deploymentId: record.deploymentId,
    currentSystem: record.currentSystem,
    phase: record.phase,
    online,
    lastSeenMs: record.lastSeenMs,
    lastErrorCode: record.lastErrorCode,
    lastErrorMessage: record.lastErrorMessage,
    lastErrorOutput: record.lastErrorOutput,
    appliedSerial: record.appliedSerial,
    agentVersion: record.agentVersion,
    createdAtMs: record.createdAtMs,
    rolloutId: record.rolloutId,
    desiredActivate: record.desiredActivate,
    heldForWindow: record.heldForWindow,
    mode: record.activationMode,
    checksFailingBeforeAndAfter: record.checksFailingBeforeAndAfter,
    checksRun: record.checksRun,
  };
}
