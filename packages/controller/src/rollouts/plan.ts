import { FerryError } from "@ferry/core";
import type { Quantity, RolloutPolicy } from "../store/rollout-records.js";

/** A count, or a share of `total` rounded up: 10% of 8 hosts is 1 host, never 0. */
export function resolveQuantity(quantity: Quantity, total: number): number {
  if (!quantity.percent) return quantity.value;
  if (quantity.value === 0) return 0;
  return Math.ceil((total * quantity.value) / 100);
}

/** Splits hosts into waves: the canary wave first (if any), then batches. */
export function planWaves(hostNames: readonly string[], policy: Pick<RolloutPolicy, "canary" | "batch">): string[][] {
  const total = hostNames.length;
  if (total === 0) return [];
  const waves: string[][] = [];
  const canary = Math.min(total, resolveQuantity(policy.canary, total));
  if (canary > 0) waves.push(hostNames.slice(0, canary));
  const batchSetting = resolveQuantity(policy.batch, total);
  const batch = Math.max(1, batchSetting > 0 ? batchSetting : total - canary);
  // Slices by index: cutting the front off an array per wave made a 10,000-host, one-per-wave plan quadratic.
  for (let start = canary; start < total; start += batch) waves.push(hostNames.slice(start, start + batch));
  return waves;
}

/**
 * Whether the failures seen so far abort the rollout. The threshold counts
 * failed and rolled-back hosts; it applies once `minExecuted` hosts finished.
 */
export function thresholdReached(policy: Pick<RolloutPolicy, "failureThreshold" | "minExecuted">, total: number, executed: number, failed: number): boolean {
  if (executed < policy.minExecuted) return false;
  const threshold = Math.max(1, resolveQuantity(policy.failureThreshold, total));
  return failed >= threshold;
}

export function validatePolicy(policy: RolloutPolicy): RolloutPolicy {
  if (policy.maxUnavailable < 1) {
    throw new FerryError("E_BAD_ARGUMENT", "--max-unavailable must be at least 1: with 0 no host could ever be switched");
  }
  for (const [flag, quantity] of [
    ["--canary", policy.canary],
    ["--batch", policy.batch],
    ["--failure-threshold", policy.failureThreshold],
  ] as const) {
    if (quantity.percent && quantity.value > 100) throw new FerryError("E_BAD_ARGUMENT", `${flag} cannot exceed 100%`);
  }
  for (const [name, value] of Object.entries(policy)) {
    if (typeof value === "number" && !(Number.isFinite(value) && value >= 0)) throw new FerryError("E_BAD_ARGUMENT", `${name} must be a non-negative number`);
  }
  return policy;
}
