import { randomBytes } from "node:crypto";
import { FerryError, assertHostName, assertStorePath, assertWireMode } from "@ferry/core";
import type { ActivationMode, HostTarget, WindowHold } from "@ferry/protocol";
import type { BinaryCache } from "../cache/binary-cache.js";
import { decideWindows } from "../rollouts/held-deploys.js";
import type { HostRecord, StateStore } from "../store/state-store.js";

export function newId(prefix: string, nowMs: number): string {
  return `${prefix}-${nowMs.toString(36)}-${randomBytes(3).toString("hex")}`;
}

/** Validates targets: good names and paths, each host once, every host known. */
export async function validateTargets(store: StateStore, targets: readonly HostTarget[]): Promise<void> {
  if (targets.length === 0) throw new FerryError("E_BAD_ARGUMENT", "name at least one HOST=STOREPATH");
  const seen = new Set<string>();
  for (const target of targets) {
    assertHostName(target.hostName);
    assertStorePath(target.storePath);
    if (seen.has(target.hostName)) throw new FerryError("E_BAD_ARGUMENT", `host ${target.hostName} named twice`);
    seen.add(target.hostName);
  }
  await store.listHosts([...seen]);
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

export interface DeployOptions {
  /** Recorded as given: unspecified leaves the choice to each host's configured strategy. */
  mode: ActivationMode;
  /** Activate now on hosts whose maintenance window is closed. */
  ignoreWindows: boolean;
}

export interface RecordedDeploy {
  deploymentId: string;
  records: HostRecord[];
  held: WindowHold[];
  windowsIgnored: WindowHold[];
}

/** The whole of a deploy: validate, check the cache, apply windows, record atomically. Pushing to agents is the caller's. */
export async function recordDeploy(
  store: StateStore,
  cache: BinaryCache,
  targets: readonly HostTarget[],
  options: DeployOptions,
  nowMs: number,
): Promise<RecordedDeploy> {
  assertWireMode(options.mode);
  await validateTargets(store, targets);
  await requireClosuresInCache(
    cache,
    targets.map((target) => target.storePath),
  );
  const windows = await decideWindows(store, targets, options.ignoreWindows, nowMs);
  const deploymentId = newId("d", nowMs);
  const records = await store.recordDeployment(deploymentId, windows.targets, options.mode, nowMs);
  return { deploymentId, records, held: windows.held, windowsIgnored: windows.ignored };
}
