import { FerryError, assertStorePath } from "@ferry/core";
import type { StateStore } from "../store/state-store.js";
import type { BinaryCache } from "./binary-cache.js";

/** A system some host may be told to run again, and why. */
export interface SystemInUse {
  storePath: string;
  /** e.g. "web-1's desired system", "rollout r-… (web-1, previous system)". */
  holder: string;
}

/**
 * The systems the cache must keep serving: every host's desired, current and
 * previous system, and the targets and rollback systems of rollouts still
 * running (a rollback on abort sends hosts their previous system).
 */
export async function systemsInUse(store: StateStore): Promise<SystemInUse[]> {
  const systems: SystemInUse[] = [];
  for (const host of await store.listHosts()) {
    if (host.desiredSystem) systems.push({ storePath: host.desiredSystem, holder: `${host.name}'s desired system` });
    if (host.currentSystem) systems.push({ storePath: host.currentSystem, holder: `${host.name}'s current system` });
    if (host.previousSystem) systems.push({ storePath: host.previousSystem, holder: `${host.name}'s previous system` });
  }
  for (const rollout of await store.rollouts.activeRollouts()) {
    for (const host of rollout.hosts) {
      systems.push({ storePath: host.storePath, holder: `rollout ${rollout.id} (${host.name}'s target)` });
      if (host.previousSystem) systems.push({ storePath: host.previousSystem, holder: `rollout ${rollout.id} (${host.name}'s previous system)` });
    }
  }
  return systems;
}

/**
 * Removes paths from the cache unless a system in use needs one: each
 * system's closure is what the cache's narinfo References say it is (the
 * controller holds no store of its own), so a path is kept whenever some
 * needed system reaches it through the narinfos present.
 */
export async function removeFromCache(cache: BinaryCache, store: StateStore, paths: readonly string[]): Promise<{ removed: string[]; absent: string[] }> {
  if (paths.length === 0) throw new FerryError("E_BAD_ARGUMENT", "name at least one store path to remove");
  const wanted = new Set(paths.map(assertStorePath));
  const checked = new Set<string>();
  for (const system of await systemsInUse(store)) {
    if (checked.has(system.storePath)) continue;
    checked.add(system.storePath);
    const closure = await cache.closureInfos([system.storePath]);
    const needed = [...wanted].find((path) => closure.has(path));
    if (needed) {
      throw new FerryError(
        "E_CACHE_PATH_IN_USE",
        `${needed} is needed by ${system.holder}, ${system.storePath}${needed === system.storePath ? "" : " (it is in its closure)"}; nothing was removed`,
      );
    }
  }
  return cache.remove([...wanted]);
}
