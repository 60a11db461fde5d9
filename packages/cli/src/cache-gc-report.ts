import type { CollectCacheGarbageResponse } from "@ferry/protocol";
import { formatDuration } from "./units.js";

const MIB = 1024 * 1024;

/** What each keep reason means, in the words of the summary line. */
const REASONS: Readonly<Record<string, string>> = {
  desired: "desired systems",
  current: "current systems",
  previous: "previous systems",
  rollout: "rollouts",
  bundle: "kept bundles",
  "in-use": "uploads and fetches under way",
};

/** `ferry cache gc`'s human report: what went (paths, MiB), what stayed and why. */
export function formatCacheGc(response: CollectCacheGarbageResponse): string {
  const verb = response.dryRun ? "would delete" : "deleted";
  const nars = response.orphanNars > 0 ? ` and ${response.orphanNars} orphan NAR file(s)` : "";
  const lines = [
    `${verb} ${response.deletedCount} path(s)${nars}, ${(Number(response.bytesFreed) / MIB).toFixed(1)} MiB, in ${(Number(response.durationMs) / 1000).toFixed(2)} s`,
  ];
  const reasons = response.keptBy.filter((kept) => kept.paths > 0).map((kept) => `${kept.paths} by ${REASONS[kept.reason] ?? kept.reason}`);
  if (response.keptYoung > 0) reasons.push(`${response.keptYoung} younger than ${formatDuration(Number(response.minAgeSeconds) * 1000)}`);
  if (response.keptUnreadable > 0) reasons.push(`${response.keptUnreadable} unreadable narinfo(s)`);
  lines.push(`kept ${response.kept} path(s)${reasons.length > 0 ? `: ${reasons.join(", ")}` : ""}`);
  if (response.rootsAbsent > 0) lines.push(`${response.rootsAbsent} system(s) in use are not in this cache (pushed elsewhere, or removed)`);
  for (const path of response.deleted.slice(0, 20)) lines.push(`  ${response.dryRun ? "would delete" : "deleted"} ${path}`);
  if (response.deletedCount > 20) lines.push(`  … and ${response.deletedCount - 20} more (--json lists up to ${response.deleted.length})`);
  return lines.join("\n");
}
