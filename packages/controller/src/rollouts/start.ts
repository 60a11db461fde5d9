import { createHash } from "node:crypto";
import { FerryError, assertHostName, assertStorePath, assertTag, assertWireMode, canonicalHostMap, intentsByHost } from "@ferry/core";
import type { SignedIntent, StartRolloutRequest } from "@ferry/protocol";
import type { ClosureSource } from "../cache/closure-source.js";
import { requireClosuresInCache } from "../desired/closures.js";
import { checkTargetIntents, newId, validateTargets } from "../desired/targets.js";
import type { RolloutPolicy, RolloutRecord } from "../store/rollout-records.js";
import type { DeploymentTarget, StateStore } from "../store/state-store.js";
import { DEFAULT_POLICY } from "./default-policy.js";
import { planWaves, validatePolicy } from "./plan.js";

/** Same manifest, same digest, whatever the order of its entries. */
export function manifestDigest(entries: Record<string, string>): string {
  const canonical = JSON.stringify(
    Object.keys(entries)
      .sort()
      .map((host) => [host, entries[host]]),
  );
  return createHash("sha256").update(canonical).digest("hex");
}

/** Picks the targets: named hosts and tagged hosts (union), each with its path from the arguments or the manifest. */
async function selectTargets(store: StateStore, request: StartRolloutRequest): Promise<DeploymentTarget[]> {
  const paths = canonicalHostMap(Object.entries(request.manifest).map(([host, path]) => [host, assertStorePath(path)] as const));
  for (const [host, path] of canonicalHostMap(request.targets.map((target) => [target.hostName, assertStorePath(target.storePath)] as const))) {
    paths.set(host, path);
  }
  let names: string[];
  if (request.hostNames.length === 0 && request.tags.length === 0) {
    names = [...paths.keys()];
  } else {
    const hostNames = request.hostNames.map(assertHostName);
    const tags = request.tags.map(assertTag);
    const wanted = new Set(tags);
    const tagged = tags.length === 0 ? [] : (await store.listHosts()).filter((host) => host.tags.some((tag) => wanted.has(tag))).map((host) => host.name);
    names = [...new Set([...hostNames, ...tagged])];
    const unmappedNamed = hostNames.filter((name) => !paths.has(name));
    if (unmappedNamed.length > 0) {
      throw new FerryError("E_NO_TARGETS", `no store path given for ${[...new Set(unmappedNamed)].join(", ")}`);
    }
    // Tagged hosts missing from the manifest are outside this release: leave them be.
    names = names.filter((name) => paths.has(name));
  }
  if (names.length === 0) throw new FerryError("E_NO_TARGETS", "the selection matches no host with a store path");
  // Intents for hosts outside the selection are dropped here: the controller keeps none it was not asked to use.
  const intents = intentsByHost([...request.intents, ...request.targets.flatMap((target): SignedIntent[] => (target.intent ? [target.intent] : []))]);
  return names.sort().map((hostName) => ({ hostName, storePath: paths.get(hostName) as string, intent: intents.get(hostName) }));
}

/**
 * Checks a rollout request and plans its waves, recording nothing. With
 * `closures: "later"` the closures' presence in the cache is not checked: a
 * bundle import plans before its files are published, to refuse a bad policy
 * or a busy host before anything changes, and plans again once they are.
 */
export async function planRollout(
  store: StateStore,
  cache: ClosureSource,
  request: StartRolloutRequest,
  nowMs: number,
  options: { closures?: "check" | "later" } = {},
): Promise<RolloutRecord> {
  const policy: RolloutPolicy = validatePolicy({ ...DEFAULT_POLICY, ...definedPolicy(request) });
  const mode = assertWireMode(request.mode);
  const targets = await validateTargets(store, await selectTargets(store, request));
  checkTargetIntents(targets, mode, nowMs);
  const manifest = Object.keys(request.manifest).length > 0 ? Object.fromEntries(canonicalHostMap(Object.entries(request.manifest))) : undefined;
  const digest = manifestDigest(manifest ?? Object.fromEntries(targets.map((t) => [t.hostName, t.storePath])));
  const environment = request.environment || (request.tags.length === 1 ? (request.tags[0] as string) : "");
  if (request.afterEnvironment) {
    const before = await store.rollouts.findCompletedRollout(digest, request.afterEnvironment);
    if (!before || before.hosts.some((host) => host.state !== "confirmed" && host.state !== "skipped")) {
      throw new FerryError("E_AFTER_NOT_SATISFIED", `no completed rollout of this manifest on environment ${JSON.stringify(request.afterEnvironment)}`);
    }
  }
  // A map, not a search per target: a 10,000-host rollout is checked in linear time.
  const holders = new Map((await store.rollouts.activeRollouts()).flatMap((rollout) => rollout.hosts.map((host) => [host.name, rollout.id] as const)));
  for (const target of targets) {
    const holder = holders.get(target.hostName);
    if (holder) throw new FerryError("E_ROLLOUT_CONFLICT", `host ${target.hostName} is in rollout ${holder}, still in progress`);
  }
  if (options.closures !== "later") {
    await requireClosuresInCache(
      cache,
      targets.map((target) => target.storePath),
      { allowUnsigned: request.allowUnsigned },
    );
  }
  const hosts = await store.listHosts(targets.map((target) => target.hostName));
  const waves = planWaves(
    targets.map((target) => target.hostName),
    policy,
  );
  const waveOf = new Map(waves.flatMap((names, index) => names.map((name) => [name, index + 1] as const)));
  return {
    id: newId("r", nowMs),
    state: "prefetching",
    environment,
    manifestDigest: digest,
    policy,
    mode,
    waveCount: waves.length,
    currentWave: 0,
    reason: "",
    requestedBy: request.requestedBy.slice(0, 200),
    createdAtMs: nowMs,
    updatedAtMs: nowMs,
    phaseStartedAtMs: nowMs,
    resumeAtMs: 0,
    hosts: targets.map((target, index) => ({
      name: target.hostName,
      storePath: target.storePath,
      wave: waveOf.get(target.hostName) as number,
      state: "pending",
      serial: 0,
      errorCode: "",
      errorMessage: "",
      previousSystem: hosts[index]?.currentSystem ?? "",
      updatedAtMs: nowMs,
      intent: target.intent,
    })),
  };
}

function definedPolicy(request: StartRolloutRequest): Partial<RolloutPolicy> {
  const given = request.policy;
  if (!given) return {};
  const policy: Partial<RolloutPolicy> = {
    gate: given.gate,
    rollbackOnAbort: given.rollbackOnAbort,
    skipUnfetchable: given.skipUnfetchable,
    acceptFailingChecks: given.acceptFailingChecks,
    minExecuted: given.minExecuted || DEFAULT_POLICY.minExecuted,
    maxUnavailable: given.maxUnavailable,
  };
  if (given.canary) policy.canary = given.canary;
  if (given.batch) policy.batch = given.batch;
  if (given.failureThreshold) policy.failureThreshold = given.failureThreshold;
  if (given.pauseMs) policy.pauseMs = given.pauseMs;
  if (given.progressDeadlineMs) policy.progressDeadlineMs = given.progressDeadlineMs;
  if (given.prefetchTimeoutMs) policy.prefetchTimeoutMs = given.prefetchTimeoutMs;
  return policy;
}
