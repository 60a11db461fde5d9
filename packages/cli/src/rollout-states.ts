import type { Rollout, RolloutHost } from "@ferry/protocol";

/**
 * What a host's rollout state means to the person watching. The summary
 * counts, the wave bars, the host lists and `--json`'s `counts` all come from
 * this one table, so no two parts of the view can disagree about a host.
 */
export type HostCategory = "confirmed" | "activating" | "boot-pending" | "reverting" | "failed" | "reverted" | "skipped" | "prefetching" | "waiting" | "other";

/** Summary order: results first, then what is moving, then what has not started. */
export const CATEGORIES: readonly HostCategory[] = [
  "confirmed",
  "activating",
  "boot-pending",
  "reverting",
  "failed",
  "reverted",
  "skipped",
  "prefetching",
  "waiting",
  "other",
];

const CATEGORY_OF_STATE: Readonly<Record<string, HostCategory>> = {
  pending: "waiting",
  prefetched: "waiting",
  "waiting-window": "waiting",
  prefetching: "prefetching",
  activating: "activating",
  // Installed as the boot default; not confirmed until the host runs it.
  "boot-pending": "boot-pending",
  reverting: "reverting",
  confirmed: "confirmed",
  failed: "failed",
  "rolled-back": "failed",
  unfetchable: "failed",
  reverted: "reverted",
  skipped: "skipped",
};

/** A state this CLI does not know (a newer controller's) is "other" and shown by its own name. */
export function categoryOf(state: string): HostCategory {
  return CATEGORY_OF_STATE[state] ?? "other";
}

/**
 * Categories in which a host has had its result in this rollout. The engine
 * only ever moves a host from one of these to another (confirmed → reverting
 * → reverted or failed; unfetchable → skipped), so a wave's done count never
 * goes down: a revert changes how the bar is drawn, not how far it reaches.
 */
const DONE: ReadonlySet<HostCategory> = new Set(["confirmed", "failed", "reverting", "reverted", "skipped"]);

export function isDone(state: string): boolean {
  return DONE.has(categoryOf(state));
}

export interface HostCounts {
  total: number;
  done: number;
  byCategory: Record<HostCategory, number>;
  /** Hosts in states this CLI does not know, by state name. */
  otherStates: Record<string, number>;
}

export function countHosts(hosts: readonly RolloutHost[]): HostCounts {
  const byCategory = Object.fromEntries(CATEGORIES.map((category) => [category, 0])) as Record<HostCategory, number>;
  const otherStates: Record<string, number> = {};
  let done = 0;
  for (const host of hosts) {
    const category = categoryOf(host.state);
    byCategory[category] += 1;
    if (category === "other") otherStates[host.state] = (otherStates[host.state] ?? 0) + 1;
    if (DONE.has(category)) done += 1;
  }
  return { total: hosts.length, done, byCategory, otherStates };
}

/** Hosts of an aborted rollout that never started stay "waiting" forever: "not started" is true before and after. */
const LABEL: Partial<Record<HostCategory, string>> = { waiting: "not started", "boot-pending": "waiting for reboot" };

/** "3 confirmed", "1 reverting", … for every category with hosts, then unknown states by name. */
export function countParts(counts: HostCounts): string[] {
  const parts = CATEGORIES.filter((category) => category !== "other" && counts.byCategory[category] > 0).map(
    (category) => `${counts.byCategory[category]} ${LABEL[category] ?? category}`,
  );
  for (const [state, count] of Object.entries(counts.otherStates)) parts.push(`${count} ${clean(state)}`);
  return parts;
}

/** Rollout states after which the engine starts nothing new. A new terminal state must be added here, or watchers wait for it until --timeout. */
const ENDED: ReadonlySet<string> = new Set(["completed", "aborted"]);

export function hasEnded(rollout: Rollout): boolean {
  return ENDED.has(rollout.state);
}

/** Ended, and no host is still switching: an aborted rollout's in-flight hosts still report, and may be reverted. */
export function isFinished(rollout: Rollout): boolean {
  return hasEnded(rollout) && !rollout.hosts.some((host) => host.state === "activating" || host.state === "reverting" || host.state === "boot-pending");
}

/** What `--wait` exits 0 for. */
export function finishedCleanly(rollout: Rollout): boolean {
  return rollout.state === "completed" && rollout.hosts.every((host) => host.state === "confirmed" || host.state === "skipped");
}

export function waveLabel(rollout: Rollout, wave: number): string {
  return wave === 1 && (rollout.policy?.canary?.value ?? 0) > 0 ? "canary" : `wave ${wave}`;
}

/** "42s", "4m10s", "2h05m": countdowns and elapsed times, coarser as they grow. */
export function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.ceil(ms / 1000));
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(seconds % 60).padStart(2, "0")}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, "0")}m`;
}

/** Text from the controller (reasons, error messages) may hold newlines or escape sequences: neither may reach a terminal raw. */
export function clean(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, " ").trim();
}
