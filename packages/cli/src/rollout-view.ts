import type { Rollout } from "@ferry/protocol";

const COUNTED = ["pending", "fetching", "fetched", "waiting", "activating", "confirmed", "failed", "rolled-back", "skipped", "reverted"] as const;
type Bucket = (typeof COUNTED)[number];

function bucketOf(state: string): Bucket {
  switch (state) {
    case "prefetching":
      return "fetching";
    case "prefetched":
      return "fetched";
    case "waiting-window":
      return "waiting";
    case "unfetchable":
      return "failed";
    case "reverting":
      return "activating";
    default:
      return (COUNTED as readonly string[]).includes(state) ? (state as Bucket) : "pending";
  }
}

export function rolloutCounts(rollout: Rollout): Record<Bucket, number> {
  const counts = Object.fromEntries(COUNTED.map((bucket) => [bucket, 0])) as Record<Bucket, number>;
  for (const host of rollout.hosts) counts[bucketOf(host.state)] += 1;
  return counts;
}

function bar(done: number, total: number, width = 20): string {
  const filled = total === 0 ? width : Math.round((done / total) * width);
  return `[${"#".repeat(filled)}${".".repeat(width - filled)}]`;
}

/** The live view: a summary line, then a bar per wave. */
export function renderRollout(rollout: Rollout): string {
  const counts = rolloutCounts(rollout);
  const summary = COUNTED.filter((bucket) => counts[bucket] > 0 || ["pending", "activating", "confirmed", "failed"].includes(bucket))
    .map((bucket) => `${bucket} ${counts[bucket]}`)
    .join(" · ");
  const phase = rollout.currentWave === 0 ? "prefetch" : `wave ${rollout.currentWave}/${rollout.waveCount}`;
  const lines = [`rollout ${rollout.id} [${rollout.state}] ${phase}${rollout.reason ? ` — ${rollout.reason}` : ""}`, `  ${summary}`];
  for (let wave = 1; wave <= rollout.waveCount; wave++) {
    const hosts = rollout.hosts.filter((host) => host.wave === wave);
    const done = hosts.filter((host) => ["confirmed", "failed", "rolled-back", "skipped", "reverted"].includes(host.state)).length;
    const label = wave === 1 && rollout.policy?.canary && rollout.policy.canary.value > 0 ? "canary" : `wave ${wave}`;
    const failed = hosts.filter((host) => ["failed", "rolled-back"].includes(host.state)).length;
    lines.push(`  ${label.padEnd(7)} ${bar(done, hosts.length)} ${done}/${hosts.length}${failed ? ` (${failed} failed)` : ""}`);
  }
  return `${lines.join("\n")}\n`;
}

export function isFinished(rollout: Rollout): boolean {
  return (rollout.state === "completed" || rollout.state === "aborted") && !rollout.hosts.some((host) => host.state === "reverting");
}
