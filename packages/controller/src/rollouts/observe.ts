import { HostPhase } from "@ferry/protocol";
import type { RolloutHostRecord, RolloutHostState } from "../store/rollout-records.js";
import type { HostRecord } from "../store/state-store.js";
import { confirmedEvidence } from "./check-evidence.js";

export const FINISHED: ReadonlySet<RolloutHostState> = new Set(["confirmed", "failed", "rolled-back", "skipped", "reverted"]);
export const FAILED: ReadonlySet<RolloutHostState> = new Set(["failed", "rolled-back"]);
/** Given their new system and not yet confirmed on it: these hold a maxUnavailable slot. */
export const IN_FLIGHT: ReadonlySet<RolloutHostState> = new Set(["activating", "boot-pending"]);
/** States in which the engine waits for the host's own report. */
export const AWAITING_HOST: ReadonlySet<RolloutHostState> = new Set(["prefetching", "activating", "boot-pending", "reverting"]);

export interface HostStep {
  state: RolloutHostState;
  errorCode?: string;
  errorMessage?: string;
}

const SUPERSEDED = "another deployment replaced this host's desired system";

/**
 * Where a host that finished its activation stands. Confirmed means it runs
 * the rollout's system and its agent confirmed it; a system installed for
 * the next boot proves nothing until the host has booted it.
 */
function activationState(record: HostRecord, storePath: string): RolloutHostState {
  if (record.phase === HostPhase.HOST_PHASE_ACTIVE) return record.currentSystem === storePath ? "confirmed" : "boot-pending";
  if (record.phase === HostPhase.HOST_PHASE_BOOT_PENDING) return "boot-pending";
  if (record.phase === HostPhase.HOST_PHASE_ROLLED_BACK) return "rolled-back";
  return "failed";
}

/**
 * What a rollout host's own record says about the step it was given (by the
 * serial the rollout assigned): its next state, or undefined while the host
 * has not finished it.
 */
export function observeHost(host: RolloutHostRecord, record: HostRecord): HostStep | undefined {
  if ((host.state === "prefetched" || host.state === "waiting-window") && record.desiredSerial !== host.serial) {
    // An operator deployed something else meanwhile: the rollout must not overwrite it.
    return { state: "skipped", errorCode: "E_SUPERSEDED", errorMessage: SUPERSEDED };
  }
  if (!AWAITING_HOST.has(host.state)) return undefined;
  if (record.desiredSerial !== host.serial) {
    return { state: host.state === "prefetching" ? "unfetchable" : "failed", errorCode: "E_SUPERSEDED", errorMessage: SUPERSEDED };
  }
  if (record.appliedSerial < host.serial) return undefined;
  const failure = { errorCode: record.lastErrorCode, errorMessage: record.lastErrorMessage };
  if (host.state === "prefetching") {
    return record.phase === HostPhase.HOST_PHASE_FETCHED ? { state: "prefetched" } : { state: "unfetchable", ...failure };
  }
  if (IN_FLIGHT.has(host.state)) {
    const state = activationState(record, host.storePath);
    if (state === "confirmed") {
      const [errorCode, errorMessage] = confirmedEvidence(record);
      return { state, errorCode, errorMessage };
    }
    return FAILED.has(state) ? { state, ...failure } : { state };
  }
  if (record.phase === HostPhase.HOST_PHASE_BOOT_PENDING) {
    return { state: "reverted", errorMessage: "the previous system is the boot default again; it runs after the next reboot" };
  }
  return record.phase === HostPhase.HOST_PHASE_ACTIVE ? { state: "reverted", ...failure } : { state: "failed", ...failure };
}
