import { assertWireMode, type LedgerEntry } from "@ferry/core";
import type { ActivationMode, WindowHold } from "@ferry/protocol";
import type { DesiredState } from "../desired/desired-state.js";
import { canonicalTargets, checkTargetIntents, newId } from "../desired/targets.js";
import { decideWindows } from "../rollouts/held-deploys.js";
import type { DeploymentTarget, HostRecord, StateStore } from "../store/state-store.js";

export interface DeployOptions {
  /** Recorded as given: unspecified leaves the choice to each host's configured strategy. */
  mode: ActivationMode;
  /** Activate now on hosts whose maintenance window is closed. */
  ignoreWindows: boolean;
  /** Record it although the cache holds no signature for some closure path. */
  allowUnsigned?: boolean;
  /** Name of the token that asked for it, recorded with the deployment. */
  requestedBy?: string;
  /** Hosts given their own current or previous system (a rollback): the cache need not hold those closures. */
  closuresOnHosts?: ReadonlySet<string>;
  /** A bundle import: its ledger line commits with the desired systems. */
  bundle?: LedgerEntry;
}

export interface RecordedDeploy {
  deploymentId: string;
  records: HostRecord[];
  held: WindowHold[];
  windowsIgnored: WindowHold[];
}

/** The whole of a deploy: validate, check intents, apply windows, then assign through the one desired-state path. */
export async function recordDeploy(
  store: StateStore,
  desired: DesiredState,
  given: readonly DeploymentTarget[],
  options: DeployOptions,
  nowMs: number,
): Promise<RecordedDeploy> {
  assertWireMode(options.mode);
  // That every host exists is checked once, by the assignment (reading 10,000 hosts costs about 85 ms).
  const targets = canonicalTargets(given);
  checkTargetIntents(targets, options.mode, nowMs);
  const windows = await decideWindows(store, targets, options.ignoreWindows, nowMs);
  const deploymentId = newId("d", nowMs);
  const records = await desired.assign({
    deploymentId,
    mode: options.mode,
    requestedBy: options.requestedBy ?? "",
    targets: windows.targets.map((target) => ({
      hostName: target.hostName,
      storePath: target.storePath,
      activate: true,
      heldForWindow: target.heldForWindow === true,
      intent: target.intent,
    })),
    closures: { allowUnsigned: options.allowUnsigned ?? false },
    closuresOnHosts: options.closuresOnHosts,
    bundle: options.bundle,
  });
  return { deploymentId, records, held: windows.held, windowsIgnored: windows.ignored };
}
