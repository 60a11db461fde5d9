import type { Rollout, RolloutHost } from "@ferry/protocol";
import { clean, countHosts, countParts, formatDuration, isDone, waveLabel } from "./rollout-states.js";

/**
 * What changed between two looks at a rollout, as plain lines for CI logs
 * and pipes: no escape codes, no redraws, one line per change, each stamped
 * with the time since the rollout started. `previous` undefined: the first
 * look, which tells the plan and every host that has already moved.
 */
export function changeLines(previous: Rollout | undefined, next: Rollout, now: number): string[] {
  const stamp = `[+${formatDuration(now - next.createdAtMs)}]`;
  const before = new Map((previous?.hosts ?? []).map((host) => [host.name, host]));
  const moved = next.hosts.filter((host) => {
    const old = before.get(host.name);
    return old ? old.state !== host.state || old.errorCode !== host.errorCode : host.state !== "pending";
  });
  // In the order things happen: hosts reach their results, the rollout moves on, the next hosts start.
  const lines = [...(previous ? [] : planLines(next)), ...moved.filter((host) => isDone(host.state)).map((host) => hostLine(next, host))];
  if (!previous || previous.state !== next.state || previous.reason !== next.reason) {
    const line = stateLine(previous, next);
    if (line) lines.push(line);
  }
  if (next.currentWave > 0 && (previous?.currentWave ?? 0) !== next.currentWave) lines.push(waveLine(next, now));
  lines.push(...moved.filter((host) => !isDone(host.state)).map((host) => hostLine(next, host)));
  return lines.map((line) => `${stamp} ${line}`);
}

function planLines(rollout: Rollout): string[] {
  const lines = [`rollout ${rollout.id}: ${rollout.hosts.length} host(s) in ${rollout.waveCount} wave(s)`];
  for (let wave = 1; wave <= rollout.waveCount; wave++) {
    const names = rollout.hosts.filter((host) => host.wave === wave).map((host) => host.name);
    lines.push(`  ${waveLabel(rollout, wave)}: ${names.join(", ")}`);
  }
  return lines;
}

function stateLine(previous: Rollout | undefined, rollout: Rollout): string {
  const reason = clean(rollout.reason);
  switch (rollout.state) {
    case "prefetching":
      return `prefetching closures on ${rollout.hosts.length} host(s)`;
    case "running":
      return previous?.state === "paused" || previous?.state === "waiting-gate" ? "running again" : "";
    case "paused":
      return `paused: ${reason || "by operator"}; go on with: ferry rollout resume ${rollout.id}`;
    case "waiting-gate":
      return `gate: ${waveLabel(rollout, rollout.currentWave)} is done; start ${waveLabel(rollout, rollout.currentWave + 1)} with: ferry rollout promote ${rollout.id}`;
    default:
      return `${clean(rollout.state)}${reason ? `: ${reason}` : ""}`;
  }
}

function waveLine(rollout: Rollout, now: number): string {
  const label = waveLabel(rollout, rollout.currentWave);
  const names = rollout.hosts.filter((host) => host.wave === rollout.currentWave).map((host) => host.name);
  const where = `${label} (${rollout.currentWave}/${rollout.waveCount}): ${names.join(", ")}`;
  if (rollout.resumeAtMs > now) return `${where} starts in ${formatDuration(rollout.resumeAtMs - now)} (pause between waves)`;
  const deadline = rollout.phaseDeadlineAtMs > now ? `; deadline in ${formatDuration(rollout.phaseDeadlineAtMs - now)}` : "";
  return `${where} started${deadline}`;
}

function hostLine(rollout: Rollout, host: RolloutHost): string {
  const error = host.errorCode ? ` ${clean(host.errorCode)}${host.errorMessage ? `: ${clean(host.errorMessage)}` : ""}` : "";
  return `${host.name} ${clean(host.state)}${error} (${waveLabel(rollout, host.wave)})`;
}

/** The closing line: every host counted once, by the same classification as the live view. */
export function summaryLine(rollout: Rollout): string {
  const counts = countHosts(rollout.hosts);
  return `rollout ${rollout.id} ${clean(rollout.state)}: ${counts.total} hosts: ${countParts(counts).join(" · ")}`;
}
