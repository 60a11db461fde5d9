import type { ErrorCode } from "@ferry/core";
import type { RolloutHostRecord, RolloutRecord } from "../store/rollout-records.js";
import type { HostRecord } from "../store/state-store.js";

/**
 * What a confirmed host's health checks proved about its new system. A check
 * that failed before the switch and still fails was not counted (the service
 * was already down, or the check is wrong), so it proves nothing; when that
 * is every check, only the heartbeat vouched for the host. Returned as the
 * code and message the rollout records beside "confirmed".
 */
export function confirmedEvidence(record: HostRecord): [] | [ErrorCode, string] {
  const failing = record.checksFailingBeforeAndAfter;
  if (failing.length === 0) return [];
  const names = failing.join(", ");
  if (failing.length >= record.checksRun) {
    return ["E_CHECKS_UNPROVEN", `none of its ${failing.length} health check(s) passed: each failed before the switch and still fails (${names})`];
  }
  return ["E_CHECKS_FAILING", `${failing.length} of ${record.checksRun} health checks failed before the switch and still fail (${names})`];
}

/**
 * Canary hosts confirmed without one passing check. A canary is there to
 * prove the release healthy; these prove nothing, so the rollout pauses
 * unless its policy accepts them.
 */
export function unprovenCanaries(rollout: RolloutRecord): RolloutHostRecord[] {
  if (rollout.policy.acceptFailingChecks || rollout.policy.canary.value === 0) return [];
  return rollout.hosts.filter((host) => host.wave === 1 && host.state === "confirmed" && host.errorCode === "E_CHECKS_UNPROVEN");
}

export function unprovenReason(hosts: readonly RolloutHostRecord[]): string {
  const which = hosts.map((host) => `${host.name}: ${host.errorMessage}`).join("; ");
  return `the canary proves nothing about this release (${which}); resume with --accept-failing-checks to count it healthy, or abort`;
}
