import { FerryError, isErrorCode, toFerryError } from "@ferry/core";
import type { Transaction, TransactionPhase } from "./state-file.js";

/**
 * Where the agent decides to roll back. Two questions, answered here and
 * nowhere else: a step of the transaction failed, what now? And a new agent
 * process (or a boot) found a transaction open, what may have happened and
 * where does it carry on?
 */
export type Decision =
  /** Carry on from this phase. */
  | { kind: "continue"; from: TransactionPhase }
  /** Put the previous system back, then report `failure`. */
  | { kind: "roll-back"; failure: FerryError }
  /** Report `failure` and leave the running system as it is. */
  | { kind: "stop"; failure: FerryError; keepNext: boolean; why: string };

/** A step of the transaction in `phase` threw `error`. */
export function afterFailure(phase: TransactionPhase, error: unknown): Decision {
  switch (phase) {
    case "fetching":
      return { kind: "stop", failure: toFerryError(error, "E_FETCH_FAILED"), keepNext: false, why: "fetch failed; the running system is untouched" };
    case "fetched":
      // The checks before the switch (controller reachable, lock free, phase recorded) refused it.
      return { kind: "stop", failure: toFerryError(error, "E_INTERNAL"), keepNext: false, why: "not switched; the running system is untouched" };
    case "activating":
      return { kind: "roll-back", failure: toFerryError(error, "E_ACTIVATION_FAILED") };
    case "confirming":
      return { kind: "roll-back", failure: toFerryError(error, "E_CONFIRM_TIMEOUT") };
    case "confirmed":
      // The new system runs and proved healthy; only making it the boot default
      // failed. Rolling back now would hurt more than it helps.
      return {
        kind: "stop",
        failure: toFerryError(error, "E_ACTIVATION_FAILED"),
        keepNext: true,
        why: "confirmed, but installing the boot entry failed",
      };
    case "rolling-back":
      return { kind: "stop", failure: toFerryError(error, "E_ROLLBACK_FAILED"), keepNext: false, why: "rollback failed: the host needs an operator" };
  }
}

/** What the host looks like to a process resuming `transaction`. */
export interface Observed {
  now: number;
  /** Target of the current-system link. */
  currentSystem: string;
}

/** A transaction found open at start-up: where to carry on, or why to roll back. */
export function onResume(transaction: Transaction, observed: Observed): Decision {
  switch (transaction.phase) {
    case "fetching":
    case "fetched":
      // Nothing was switched yet; fetching again is harmless and re-roots the closure.
      return { kind: "continue", from: "fetching" };
    case "activating":
      if (observed.currentSystem !== transaction.next) {
        return { kind: "roll-back", failure: new FerryError("E_INTERRUPTED", "the agent stopped while switching; the new system did not come up") };
      }
      // NixOS points /run/current-system at the new system early in activation,
      // so a moved link does not prove the switch finished: run it again (it is
      // idempotent) and judge by its exit status.
      return { kind: "continue", from: "activating" };
    case "confirming":
      if (observed.now >= transaction.deadlineMs) {
        return { kind: "roll-back", failure: new FerryError("E_CONFIRM_TIMEOUT", "the confirmation deadline passed while the agent was down") };
      }
      if (observed.currentSystem !== transaction.next) {
        return {
          kind: "roll-back",
          failure: new FerryError("E_INTERRUPTED", "the host is no longer running the new system (rebooted before confirmation?)"),
        };
      }
      return { kind: "continue", from: "confirming" };
    case "confirmed":
      return { kind: "continue", from: "confirmed" };
    case "rolling-back":
      return { kind: "roll-back", failure: recordedFailure(transaction) };
  }
}

/** The failure a rollback was started for, as persisted before it began. */
export function recordedFailure(transaction: Transaction): FerryError {
  const failure = transaction.failure;
  const code = failure && isErrorCode(failure.code) ? failure.code : "E_INTERRUPTED";
  return new FerryError(code, failure?.message ?? "rollback interrupted", { output: failure?.output ?? "" });
}
