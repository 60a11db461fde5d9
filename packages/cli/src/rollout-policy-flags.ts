import { FerryError } from "@ferry/core";
import type { RolloutPolicy } from "@ferry/protocol";
import { ROLLOUT_POLICY_FLAGS } from "./spec/rollout.js";
import { parseCount, parseDuration, parseQuantity } from "./units.js";

/** What the verb parser yields for ROLLOUT_POLICY_FLAGS (shared by `ferry rollout start` and `ferry bundle import --rollout`). */
export interface RolloutPolicyValues {
  canary?: string | undefined;
  batch?: string | undefined;
  "max-unavailable": string;
  "failure-threshold"?: string | undefined;
  "min-executed": string;
  pause?: string | undefined;
  gate: boolean;
  "progress-deadline"?: string | undefined;
  "prefetch-timeout"?: string | undefined;
  "skip-unfetchable": boolean;
  "rollback-on-abort": boolean;
  "accept-failing-checks": boolean;
}

/** The flags given, as the wire policy; the controller fills the defaults and checks the whole (rollouts/plan.ts). */
export function parseRolloutPolicy(values: RolloutPolicyValues): RolloutPolicy {
  if (values.gate && values.pause) throw new FerryError("E_BAD_ARGUMENT", "--pause and --gate exclude each other");
  return {
    canary: values.canary ? parseQuantity(values.canary, "--canary") : undefined,
    batch: values.batch ? parseQuantity(values.batch, "--batch") : undefined,
    maxUnavailable: parseCount(values["max-unavailable"], "--max-unavailable"),
    failureThreshold: values["failure-threshold"] ? parseQuantity(values["failure-threshold"], "--failure-threshold") : undefined,
    minExecuted: parseCount(values["min-executed"], "--min-executed"),
    pauseMs: values.pause ? parseDuration(values.pause, "--pause") : 0,
    gate: values.gate,
    progressDeadlineMs: values["progress-deadline"] ? parseDuration(values["progress-deadline"], "--progress-deadline") : 0,
    rollbackOnAbort: values["rollback-on-abort"],
    prefetchTimeoutMs: values["prefetch-timeout"] ? parseDuration(values["prefetch-timeout"], "--prefetch-timeout") : 0,
    skipUnfetchable: values["skip-unfetchable"],
    acceptFailingChecks: values["accept-failing-checks"],
  };
}

/** The policy flags set to something other than their defaults: they only mean something with --rollout. */
export function policyFlagsGiven(values: RolloutPolicyValues): string[] {
  return Object.entries(ROLLOUT_POLICY_FLAGS)
    .filter(([name, flag]) => {
      const value = values[name as keyof RolloutPolicyValues];
      const unset = "default" in flag ? flag.default : undefined;
      return value !== undefined && value !== unset;
    })
    .map(([name]) => name);
}
