// What a plain deploy writes, for tests that set up a host's desired system
// without the API: the same store call the desired-state path makes.
import type { ActivationMode } from "@ferry/protocol";
import type { DeploymentTarget, HostRecord, StateStore } from "../src/store/state-store.js";

export function recordDeployment(
  store: Pick<StateStore, "assignDesired">,
  deploymentId: string,
  targets: readonly DeploymentTarget[],
  mode: ActivationMode,
  nowMs: number,
  requestedBy = "",
): Promise<HostRecord[]> {
  return store.assignDesired({
    deploymentId,
    mode,
    nowMs,
    requestedBy,
    targets: targets.map((target) => ({
      hostName: target.hostName,
      storePath: target.storePath,
      activate: true,
      heldForWindow: target.heldForWindow === true,
      intent: target.intent,
    })),
  });
}
