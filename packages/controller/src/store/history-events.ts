import type { DesiredTarget, DesiredWrite } from "./state-store.js";

/**
 * The host event recorded with every desired system, in the same transaction:
 * the host's history of deployments is its events, so it is bounded and pruned
 * by the same retention as the results that tell each one's outcome.
 */
export const DESIRED_ASSIGNED = "desired-assigned";

export function assignedEventData(write: DesiredWrite, target: DesiredTarget, serial: number): Record<string, unknown> {
  return {
    serial,
    deploymentId: write.deploymentId,
    rolloutId: write.rollout?.id ?? "",
    requestedBy: write.requestedBy,
    storePath: target.storePath,
    mode: write.mode,
    activate: target.activate,
    heldForWindow: target.heldForWindow,
  };
}
