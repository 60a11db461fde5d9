import type { WindowHold } from "@ferry/protocol";
import type { DesiredState } from "../desired/desired-state.js";
import type { AgentHub } from "../hub/agent-hub.js";
import type { MaintenanceWindowRecord } from "../store/rollout-records.js";
import type { DeploymentTarget, StateStore } from "../store/state-store.js";
import { mayActivateNow, nextOpeningOf, windowsFor } from "./windows.js";

/** How far ahead a held deployment looks for its window's next opening. */
const OPENING_HORIZON_MS = 7 * 24 * 3_600_000;

export interface WindowDecision {
  targets: DeploymentTarget[];
  /** Hosts that fetch now and activate when a window opens. */
  held: WindowHold[];
  /** Hosts activated now although their window is closed (ignoreWindows). */
  ignored: WindowHold[];
}

/**
 * Maintenance windows bind manual deploys as they bind rollouts: a host whose
 * windows are all closed fetches at once and activates when one opens, unless
 * the operator said to ignore windows, which the result then reports.
 */
export async function decideWindows(store: StateStore, targets: readonly DeploymentTarget[], ignoreWindows: boolean, nowMs: number): Promise<WindowDecision> {
  const windows = await store.rollouts.listWindows();
  const decision: WindowDecision = { targets: [], held: [], ignored: [] };
  if (windows.length === 0) return { ...decision, targets: [...targets] };
  const hosts = await store.listHosts(targets.map((target) => target.hostName));
  targets.forEach((target, index) => {
    const tags = hosts[index]?.tags ?? [];
    if (mayActivateNow(target.hostName, tags, windows, nowMs)) {
      decision.targets.push({ ...target });
      return;
    }
    const hold = { hostName: target.hostName, opensAtMs: nextOpeningOf(windowsFor(target.hostName, tags, windows), nowMs, OPENING_HORIZON_MS) };
    if (ignoreWindows) decision.ignored.push(hold);
    else decision.held.push(hold);
    decision.targets.push({ ...target, heldForWindow: !ignoreWindows });
  });
  return decision;
}

export interface ReleaseDeps {
  store: StateStore;
  desired: DesiredState;
  hub: Pick<AgentHub, "isOnline">;
  now: () => number;
}

/**
 * Activates held deployments whose window is open. A host offline at that
 * moment stays held, so it never activates on reconnecting after its window
 * closed.
 */
export async function releaseHeldDeploys(deps: ReleaseDeps, windows: readonly MaintenanceWindowRecord[]): Promise<void> {
  const now = deps.now();
  for (const host of await deps.store.listHeld()) {
    if (!deps.hub.isOnline(host.name) || !mayActivateNow(host.name, host.tags, windows, now)) continue;
    await deps.desired.releaseHeld(host);
  }
}
