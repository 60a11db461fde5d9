import type { RolloutPolicy } from "../store/rollout-records.js";

/**
 * What a rollout does unless told otherwise. Its own module, exported as
 * `@ferry/controller/default-policy`, so that the CLI's help can show these
 * values without loading the controller.
 */
export const DEFAULT_POLICY: RolloutPolicy = {
  canary: { value: 0, percent: false },
  batch: { value: 0, percent: false },
  maxUnavailable: 1,
  failureThreshold: { value: 1, percent: false },
  minExecuted: 1,
  pauseMs: 0,
  gate: false,
  progressDeadlineMs: 0,
  rollbackOnAbort: false,
  prefetchTimeoutMs: 30 * 60_000,
  skipUnfetchable: false,
  acceptFailingChecks: false,
};
