import type { HostStatus } from "@ferry/protocol";
import type { HostRecord } from "../store/state-store.js";

/** What the agent hub knows of a host's link that the store may not have yet. */
export interface LinkView {
  isOnline(hostName: string): boolean;
  /** Heartbeats reach the store in batches: this is the newest one seen; 0 if none. */
  lastSeenMs(hostName: string): number;
}

/** A host never connected to this process. */
export const NO_LINK: LinkView = { isOnline: () => false, lastSeenMs: () => 0 };

export function toHostStatus(record: HostRecord, link: LinkView): HostStatus {
  return {
    name: record.name,
    tags: record.tags,
    desiredSystem: record.desiredSystem,
    desiredSerial: record.desiredSerial,
    deploymentId: record.deploymentId,
    currentSystem: record.currentSystem,
    phase: record.phase,
    online: link.isOnline(record.name),
    lastSeenMs: Math.max(record.lastSeenMs, link.lastSeenMs(record.name)),
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
