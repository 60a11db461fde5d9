import { randomBytes } from "node:crypto";
import { FerryError, assertHostName, assertStorePath } from "@ferry/core";
import { ActivationMode, type HostTarget } from "@ferry/protocol";
import type { BinaryCache } from "../cache/binary-cache.js";
import type { HostRecord, StateStore } from "../store/state-store.js";

export function newId(prefix: string, nowMs: number): string {
  return `${prefix}-${nowMs.toString(36)}-${randomBytes(3).toString("hex")}`;
}

/** Validates targets: good names and paths, each host once, every host known. Returns them with canonical host names. */
export async function validateTargets(store: StateStore, given: readonly HostTarget[]): Promise<HostTarget[]> {
  if (given.length === 0) throw new FerryError("E_BAD_ARGUMENT", "name at least one HOST=STOREPATH");
  const seen = new Set<string>();
  const targets = given.map((target) => {
    const hostName = assertHostName(target.hostName);
    if (seen.has(hostName)) throw new FerryError("E_BAD_ARGUMENT", `host ${hostName} named twice`);
    seen.add(hostName);
    return { hostName, storePath: assertStorePath(target.storePath) };
  });
  await store.listHosts([...seen]);
  return targets;
}

/** Refuses unless the cache can serve every path of every target's closure. */
export async function requireClosuresInCache(cache: BinaryCache, storePaths: Iterable<string>): Promise<void> {
  for (const path of new Set(storePaths)) {
    const missing = await cache.missingFromClosure(path);
    if (missing.length > 0) {
      const shown = missing.slice(0, 5).join(", ") + (missing.length > 5 ? ` and ${missing.length - 5} more` : "");
      throw new FerryError("E_PATH_NOT_IN_CACHE", `the cache lacks ${missing.length} path(s) of the closure of ${path}: ${shown}`);
    }
  }
}

/** The whole of a deploy: validate, check the cache, record atomically. Pushing to agents is the caller's. */
export async function recordDeploy(
  store: StateStore,
  cache: BinaryCache,
  given: readonly HostTarget[],
  mode: ActivationMode,
  nowMs: number,
): Promise<{ deploymentId: string; records: HostRecord[] }> {
  const targets = await validateTargets(store, given);
  await requireClosuresInCache(
    cache,
    targets.map((target) => target.storePath),
  );
  const effectiveMode = mode === ActivationMode.ACTIVATION_MODE_UNSPECIFIED ? ActivationMode.ACTIVATION_MODE_SWITCH : mode;
  const deploymentId = newId("d", nowMs);
  const records = await store.recordDeployment(deploymentId, targets, effectiveMode, nowMs);
  return { deploymentId, records };
}
