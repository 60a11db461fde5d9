import type { RolloutRecord } from "../store/rollout-records.js";

/**
 * When the rollout's current phase gives up if it has not finished: the
 * prefetch timeout while prefetching, the progress deadline while a wave
 * runs. 0 while nothing is timed. The engine enforces exactly this value and
 * the operator API shows it, so the countdown a user watches is the one that
 * aborts the rollout.
 */
export function phaseDeadlineAtMs(rollout: Pick<RolloutRecord, "state" | "phaseStartedAtMs" | "policy">): number {
  if (rollout.state === "prefetching") return rollout.phaseStartedAtMs + rollout.policy.prefetchTimeoutMs;
  if (rollout.state === "running" && rollout.policy.progressDeadlineMs > 0) return rollout.phaseStartedAtMs + rollout.policy.progressDeadlineMs;
  return 0;
}
