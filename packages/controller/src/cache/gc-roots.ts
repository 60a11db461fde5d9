import type { LedgerEntry } from "@ferry/core";
import type { StateStore } from "../store/state-store.js";

/** Why a path is kept, in the order a path reached from several is counted under the first. */
export const GC_ROOT_KINDS = ["desired", "current", "previous", "rollout", "bundle"] as const;
export type GcRootKind = (typeof GC_ROOT_KINDS)[number];

export interface GcRoot {
  storePath: string;
  kind: GcRootKind;
}

export interface GcRootPolicy {
  nowMs: number;
  /** A finished rollout changed within this long still holds its targets and previous systems (an operator may revert to them). */
  recentRolloutMs: number;
  /** The newest this many bundle imports (of all sites, by import time) hold their hosts' systems. */
  keepBundles: number;
}

/**
 * The systems whose closures the cache must keep: every host's desired,
 * current and previous system; every target and previous system of a
 * rollout that is running or changed within `recentRolloutMs`; every
 * system of the newest `keepBundles` bundle imports in the ledger (what a
 * site redeploys without a new bundle).
 */
export async function cacheGcRoots(store: StateStore, bundles: readonly LedgerEntry[], policy: GcRootPolicy): Promise<GcRoot[]> {
  const roots: GcRoot[] = [];
  const add = (storePath: string, kind: GcRootKind): void => {
    if (storePath) roots.push({ storePath, kind });
  };
  for (const host of await store.listHosts()) {
    add(host.desiredSystem, "desired");
    add(host.currentSystem, "current");
    add(host.previousSystem, "previous");
  }
  const rollouts = new Map((await store.rollouts.activeRollouts()).map((rollout) => [rollout.id, rollout]));
  for (const rollout of await store.rollouts.rolloutsUpdatedSince(policy.nowMs - policy.recentRolloutMs)) rollouts.set(rollout.id, rollout);
  for (const rollout of rollouts.values()) {
    for (const host of rollout.hosts) {
      add(host.storePath, "rollout");
      add(host.previousSystem, "rollout");
    }
  }
  const newest = [...bundles].sort((a, b) => b.importedAtMs - a.importedAtMs).slice(0, policy.keepBundles);
  for (const entry of newest) for (const storePath of Object.values(entry.hosts)) add(storePath, "bundle");
  return roots;
}
