import { FerryError } from "@ferry/core";
import type { RolloutPolicy } from "@ferry/protocol";
import { parseCount, parseDuration, parseQuantity } from "./units.js";

/** The rollout policy flags, shared by `ferry rollout start` and `ferry bundle import --rollout`, so both read them alike. */
export const ROLLOUT_POLICY_OPTIONS = {
  canary: { type: "string" },
  batch: { type: "string" },
  "max-unavailable": { type: "string" },
  "failure-threshold": { type: "string" },
  "min-executed": { type: "string" },
  pause: { type: "string" },
  gate: { type: "boolean", default: false },
  "progress-deadline": { type: "string" },
  "prefetch-timeout": { type: "string" },
  "skip-unfetchable": { type: "boolean", default: false },
  "rollback-on-abort": { type: "boolean", default: false },
  "accept-failing-checks": { type: "boolean", default: false },
} as const;

export interface RolloutPolicyValues {
  canary?: string | undefined;
  batch?: string | undefined;
  "max-unavailable"?: string | undefined;
  "failure-threshold"?: string | undefined;
  "min-executed"?: string | undefined;
  pause?: string | undefined;
  gate?: boolean | undefined;
  "progress-deadline"?: string | undefined;
  "prefetch-timeout"?: string | undefined;
  "skip-unfetchable"?: boolean | undefined;
  "rollback-on-abort"?: boolean | undefined;
  "accept-failing-checks"?: boolean | undefined;
}

/** The flags given, as the wire policy; the controller fills the defaults and checks the whole (rollouts/plan.ts). */
export function parseRolloutPolicy(values: RolloutPolicyValues): RolloutPolicy {
  if (values.gate && values.pause) throw new FerryError("E_BAD_ARGUMENT", "--pause and --gate exclude each other");
  return {
    canary: values.canary ? parseQuantity(values.canary, "--canary") : undefined,
    batch: values.batch ? parseQuantity(values.batch, "--batch") : undefined,
    maxUnavailable: parseCount(values["max-unavailable"], "--max-unavailable", 1),
    failureThreshold: values["failure-threshold"] ? parseQuantity(values["failure-threshold"], "--failure-threshold") : undefined,
    minExecuted: parseCount(values["min-executed"], "--min-executed", 1),
    pauseMs: values.pause ? parseDuration(values.pause, "--pause") : 0,
    gate: values.gate ?? false,
    progressDeadlineMs: values["progress-deadline"] ? parseDuration(values["progress-deadline"], "--progress-deadline") : 0,
    rollbackOnAbort: values["rollback-on-abort"] ?? false,
    prefetchTimeoutMs: values["prefetch-timeout"] ? parseDuration(values["prefetch-timeout"], "--prefetch-timeout") : 0,
    skipUnfetchable: values["skip-unfetchable"] ?? false,
    acceptFailingChecks: values["accept-failing-checks"] ?? false,
  };
}

/** Whether any policy flag was given: they only mean something with --rollout. */
export function policyFlagsGiven(values: RolloutPolicyValues): string[] {
  return Object.keys(ROLLOUT_POLICY_OPTIONS).filter((key) => {
    const value = values[key as keyof RolloutPolicyValues];
    return value !== undefined && value !== false;
  });
}
