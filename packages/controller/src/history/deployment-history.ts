import type { ActivationMode } from "@ferry/protocol";
import { DESIRED_ASSIGNED } from "../store/history-events.js";
import type { HostEvent } from "../store/state-store.js";

/** How one host's part of a deployment ended, as its results tell. */
export type HistoryOutcome = "pending" | "confirmed" | "boot-pending" | "failed" | "rolled-back" | "superseded";

export interface HistoryEntry {
  atMs: number;
  hostName: string;
  deploymentId: string;
  rolloutId: string;
  requestedBy: string;
  storePath: string;
  serial: number;
  mode: ActivationMode;
  heldForWindow: boolean;
  outcome: HistoryOutcome;
  errorCode: string;
  errorMessage: string;
  /** When the deciding result came; 0 without one. */
  finishedAtMs: number;
}

const RESULT_KINDS = new Set(["activation-succeeded", "activation-failed"]);

function text(value: unknown): string {
  return typeof value === "string" ? value : "";
}

function count(value: unknown): number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? value : -1;
}

function outcomeOf(result: HostEvent): HistoryOutcome | undefined {
  const phase = text(result.data["phase"]);
  if (result.kind === "activation-succeeded") {
    // A fetch-only result (prefetch, or a deployment held for its window) decides nothing yet.
    if (phase === "fetched") return undefined;
    return phase === "boot-pending" ? "boot-pending" : "confirmed";
  }
  return phase === "rolled-back" ? "rolled-back" : "failed";
}

/**
 * One host's deployments, newest first, from its events (oldest first). A
 * deployment owns the serials from its own up to the next deployment's:
 * releasing a held deployment gives the host a new serial without a new
 * deployment, and the result for that serial is still this deployment's.
 * Fetch-only assignments (a rollout's prefetch) are bounds, not entries.
 */
export function hostHistory(events: readonly HostEvent[]): HistoryEntry[] {
  const assigned = events
    .filter((event) => event.kind === DESIRED_ASSIGNED && count(event.data["serial"]) > 0)
    .sort((a, b) => count(a.data["serial"]) - count(b.data["serial"]));
  const results = events.filter((event) => RESULT_KINDS.has(event.kind) && count(event.data["serial"]) > 0);
  const entries: HistoryEntry[] = [];
  assigned.forEach((event, index) => {
    const { data } = event;
    const heldForWindow = data["heldForWindow"] === true;
    if (data["activate"] !== true && !heldForWindow) return;
    const serial = count(data["serial"]);
    const next = assigned[index + 1];
    const end = next ? count(next.data["serial"]) : Number.POSITIVE_INFINITY;
    let outcome: HistoryOutcome = next ? "superseded" : "pending";
    let decided: HostEvent | undefined;
    for (const result of results) {
      const resultSerial = count(result.data["serial"]);
      if (resultSerial < serial || resultSerial >= end) continue;
      const resultOutcome = outcomeOf(result);
      if (resultOutcome === undefined) continue;
      outcome = resultOutcome;
      decided = result;
    }
    entries.push({
      atMs: event.atMs,
      hostName: event.hostName,
      deploymentId: text(data["deploymentId"]),
      rolloutId: text(data["rolloutId"]),
      requestedBy: text(data["requestedBy"]),
      storePath: text(data["storePath"]),
      serial,
      mode: (typeof data["mode"] === "number" ? data["mode"] : 0) as ActivationMode,
      heldForWindow,
      outcome,
      errorCode: decided ? text(decided.data["errorCode"]) : "",
      errorMessage: decided ? text(decided.data["errorMessage"]) : "",
      finishedAtMs: decided?.atMs ?? 0,
    });
  });
  return entries.reverse();
}

/**
 * The serials a deployment or rollout gave a host, from its history: what
 * `ferry logs --deployment` matches log lines against.
 */
export function serialsOf(events: readonly HostEvent[], id: string): (serial: number) => boolean {
  const assigned = events
    .filter((event) => event.kind === DESIRED_ASSIGNED && count(event.data["serial"]) > 0)
    .sort((a, b) => count(a.data["serial"]) - count(b.data["serial"]));
  const ranges: [number, number][] = [];
  assigned.forEach((event, index) => {
    if (text(event.data["deploymentId"]) !== id && text(event.data["rolloutId"]) !== id) return;
    const next = assigned[index + 1];
    ranges.push([count(event.data["serial"]), next ? count(next.data["serial"]) : Number.POSITIVE_INFINITY]);
  });
  return (serial) => ranges.some(([from, to]) => serial >= from && serial < to);
}
