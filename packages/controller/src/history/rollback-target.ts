import { FerryError } from "@ferry/core";
import type { HostRecord } from "../store/state-store.js";
import type { HistoryEntry } from "./deployment-history.js";

export interface RollbackChoice {
  hostName: string;
  storePath: string;
  source: "previous" | "history" | "given";
  /**
   * The host holds this closure itself (it is what it runs or ran just
   * before), so the cache need not: a system from before Ferry never was in it.
   */
  onHost: boolean;
}

/**
 * What `ferry rollback` gives a host: the newest system it confirmed that is
 * not the one it runs, else what it ran before (possibly from before Ferry),
 * unless history shows that only ever failed. With `to`, that path, if the
 * host ran it or confirmed it within the history kept.
 */
export function chooseRollback(
  host: Pick<HostRecord, "name" | "currentSystem" | "previousSystem">,
  history: readonly HistoryEntry[],
  to?: string,
): RollbackChoice {
  const onHost = (path: string): boolean => path === host.previousSystem || path === host.currentSystem;
  const confirmed = history.filter((entry) => entry.outcome === "confirmed" || entry.outcome === "boot-pending");
  if (to !== undefined) {
    if (to !== host.previousSystem && !confirmed.some((entry) => entry.storePath === to)) {
      throw new FerryError("E_NOT_IN_HISTORY", `host ${host.name} has not confirmed ${to} within the history the controller keeps`);
    }
    return { hostName: host.name, storePath: to, source: "given", onHost: onHost(to) };
  }
  const newest = confirmed.find((entry) => entry.storePath !== host.currentSystem);
  if (newest) {
    const source = newest.storePath === host.previousSystem ? "previous" : "history";
    return { hostName: host.name, storePath: newest.storePath, source, onHost: onHost(newest.storePath) };
  }
  const previous = host.previousSystem;
  const onlyFailed =
    previous !== "" && history.some((entry) => entry.storePath === previous && (entry.outcome === "failed" || entry.outcome === "rolled-back"));
  if (previous === "" || previous === host.currentSystem || onlyFailed) {
    throw new FerryError(
      "E_NO_PREVIOUS_SYSTEM",
      `host ${host.name} has no previous confirmed system to roll back to` + (onlyFailed ? ` (${previous} failed there)` : ""),
    );
  }
  return { hostName: host.name, storePath: previous, source: "previous", onHost: true };
}
