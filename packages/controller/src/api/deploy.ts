import { randomBytes } from "node:crypto";
import { FerryError, assertHostName, assertStorePath, assertWireMode, checkRelayedIntent, intentModeOfWire } from "@ferry/core";
import type { ActivationMode, WindowHold } from "@ferry/protocol";
import type { BinaryCache } from "../cache/binary-cache.js";
import { decideWindows } from "../rollouts/held-deploys.js";
import type { DeploymentTarget, HostRecord, StateStore } from "../store/state-store.js";

export function newId(prefix: string, nowMs: number): string {
  return `${prefix}-${nowMs.toString(36)}-${randomBytes(3).toString("hex")}`;
}

/** Validates targets: good names and paths, each host once, every host known. Returns them with canonical host names. */
export async function validateTargets<T extends Pick<DeploymentTarget, "hostName" | "storePath">>(store: StateStore, given: readonly T[]): Promise<T[]> {
  if (given.length === 0) throw new FerryError("E_BAD_ARGUMENT", "name at least one HOST=STOREPATH");
  const seen = new Set<string>();
  const targets = given.map((target) => {
    const hostName = assertHostName(target.hostName);
    if (seen.has(hostName)) throw new FerryError("E_BAD_ARGUMENT", `host ${hostName} named twice`);
    seen.add(hostName);
    return { ...target, hostName, storePath: assertStorePath(target.storePath) };
  });
  await store.listHosts([...seen]);
  return targets;
}

export interface CacheRequirements {
  /** Accept closure paths for which the cache holds no signature at all. */
  allowUnsigned: boolean;
}

function listSome(paths: readonly string[]): string {
  return paths.slice(0, 5).join(", ") + (paths.length > 5 ? ` and ${paths.length - 5} more` : "");
}

/**
 * Refuses unless the cache can serve every path of every target's closure
 * and, unless allowed, holds some signature for each. The controller cannot
 * know which keys a host trusts, but a path with no signature at all would be
 * refused by every host that gets it from this cache.
 */
export async function requireClosuresInCache(cache: BinaryCache, storePaths: Iterable<string>, requirements: CacheRequirements): Promise<void> {
  for (const path of new Set(storePaths)) {
    const infos = [...(await cache.closureInfos([path]))];
    const missing = infos.filter(([, info]) => info === undefined).map(([p]) => p);
    if (missing.length > 0) {
      throw new FerryError("E_PATH_NOT_IN_CACHE", `the cache lacks ${missing.length} path(s) of the closure of ${path}: ${listSome(missing.sort())}`);
    }
    const unsigned = infos.filter(([, info]) => info?.sigs.length === 0).map(([p]) => p);
    if (unsigned.length > 0 && !requirements.allowUnsigned) {
      throw new FerryError(
        "E_CACHE_UNSIGNED",
        `the cache holds no signature for ${unsigned.length} path(s) of the closure of ${path}: ${listSome(unsigned.sort())}` +
          "; push them again with --signing-key-file, or pass --allow-unsigned",
      );
    }
  }
}

export interface DeployOptions {
  /** Recorded as given: unspecified leaves the choice to each host's configured strategy. */
  mode: ActivationMode;
  /** Activate now on hosts whose maintenance window is closed. */
  ignoreWindows: boolean;
  /** Record it although the cache holds no signature for some closure path. */
  allowUnsigned?: boolean;
  /** Name of the token that asked for it, recorded with the deployment. */
  requestedBy?: string;
}

export interface RecordedDeploy {
  deploymentId: string;
  records: HostRecord[];
  held: WindowHold[];
  windowsIgnored: WindowHold[];
}

/**
 * Refuses intents that cannot be for their target: another host, path or
 * mode, malformed, or not valid now. The controller holds no host's keys, so
 * the signature is the host's to check; this only spares an operator a
 * deployment every host would refuse.
 */
export function checkTargetIntents(targets: readonly DeploymentTarget[], mode: ActivationMode, nowMs: number): void {
  for (const target of targets) {
    if (target.intent) checkRelayedIntent(target.intent, { hostName: target.hostName, storePath: target.storePath, mode: intentModeOfWire(mode) }, nowMs);
  }
}

/** The whole of a deploy: validate, check the cache, apply windows, record atomically. Pushing to agents is the caller's. */
export async function recordDeploy(
  store: StateStore,
  cache: BinaryCache,
  given: readonly DeploymentTarget[],
  options: DeployOptions,
  nowMs: number,
): Promise<RecordedDeploy> {
  assertWireMode(options.mode);
  const targets = await validateTargets(store, given);
  checkTargetIntents(targets, options.mode, nowMs);
  await requireClosuresInCache(
    cache,
    targets.map((target) => target.storePath),
    { allowUnsigned: options.allowUnsigned ?? false },
  );
  const windows = await decideWindows(store, targets, options.ignoreWindows, nowMs);
  const deploymentId = newId("d", nowMs);
  const records = await store.recordDeployment(deploymentId, windows.targets, options.mode, nowMs, options.requestedBy ?? "");
  return { deploymentId, records, held: windows.held, windowsIgnored: windows.ignored };
}
