import type { RolloutHostRecord, RolloutHostState, RolloutRecord } from "../store/rollout-records.js";

/**
 * How a finished rollout ended, for people, scripts and `--wait`'s exit
 * status: "" while it runs. Skipped hosts (superseded, removed, unfetchable
 * and skipped on purpose) did not fail, but they do not run the release.
 */
export type RolloutOutcome = "" | "all-confirmed" | "some-skipped" | "some-failed" | "aborted";

const FAILED: ReadonlySet<RolloutHostState> = new Set(["failed", "rolled-back"]);
const LISTED = 10;

export function rolloutOutcome(rollout: Pick<RolloutRecord, "state" | "hosts">): RolloutOutcome {
  if (rollout.state === "aborted") return "aborted";
  if (rollout.state !== "completed") return "";
  if (rollout.hosts.some((host) => host.state !== "confirmed" && host.state !== "skipped")) return "some-failed";
  if (rollout.hosts.some((host) => host.state === "skipped")) return "some-skipped";
  return "all-confirmed";
}

function describe(host: RolloutHostRecord): string {
  const why = [host.errorCode, host.errorMessage].filter(Boolean).join(": ");
  return `${host.name}${why ? ` (${why})` : ""}`;
}

/** The reason a completed rollout shows: what did not run the release, and why, first. */
export function completionReason(hosts: readonly RolloutHostRecord[]): string {
  const confirmed = hosts.filter((host) => host.state === "confirmed").length;
  const groups = [
    ["failed", hosts.filter((host) => FAILED.has(host.state))],
    ["skipped", hosts.filter((host) => host.state === "skipped")],
  ] as const;
  const present = groups.filter(([, members]) => members.length > 0);
  if (present.length === 0) return `all ${confirmed} host(s) confirmed`;
  const counts = present.map(([label, members]) => `${members.length} ${label}`).join(", ");
  const details = present.map(([label, members]) => {
    const shown = members.slice(0, LISTED).map(describe).join(", ");
    return `${label}: ${shown}${members.length > LISTED ? ` and ${members.length - LISTED} more` : ""}`;
  });
  return `completed with ${counts} (${details.join("; ")}); ${confirmed} confirmed`;
}
