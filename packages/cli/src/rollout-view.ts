import type { Rollout, RolloutHost } from "@ferry/protocol";
import {
  categoryOf,
  clean,
  countHosts,
  countParts,
  formatDuration,
  hasEnded,
  isFinished,
  waveLabel,
  type HostCategory,
  type HostCounts,
} from "./rollout-states.js";
import { fit, flow, words, type FlowItem } from "./text-flow.js";

export interface ViewOptions {
  /** Columns: no line of the view is wider. */
  width: number;
  /** The clock countdowns are measured against. */
  now: number;
  /** Rows the view may take; waves fold to fit. Unbounded when absent. */
  maxLines?: number;
  /** A line about the watch itself (controller unreachable…), shown under the title. */
  notice?: string;
  /** Lines under the view, e.g. how to stop watching. */
  footer?: readonly string[];
}

/** How much detail the waves get; the view drops detail step by step until it fits the terminal's height. */
interface Detail {
  currentHostLines: number;
  otherHostLines: number;
  /** Waves this far from the current one fold into one line per run. */
  foldBeyond: number;
}

const DETAILS: readonly Detail[] = [
  { currentHostLines: 3, otherHostLines: 1, foldBeyond: Infinity },
  { currentHostLines: 3, otherHostLines: 0, foldBeyond: Infinity },
  { currentHostLines: 1, otherHostLines: 0, foldBeyond: Infinity },
  { currentHostLines: 1, otherHostLines: 0, foldBeyond: 1 },
  { currentHostLines: 0, otherHostLines: 0, foldBeyond: 0 },
];

/**
 * The rollout as lines of text, none wider than `width`: a title, what the
 * rollout is doing or waiting for, the hosts counted by state, then each wave
 * with its bar and its hosts by name. Pure: the same rollout, width and clock
 * give the same lines, which is what the tests read.
 */
export function renderRollout(rollout: Rollout, options: ViewOptions): string[] {
  const width = Math.max(1, Math.floor(options.width));
  let lines: string[] = [];
  for (const detail of DETAILS) {
    lines = [...head(rollout, options, width), ...waves(rollout, options, width, detail), ...(options.footer ?? []).map((line) => fit(line, width))];
    if (options.maxLines === undefined || lines.length <= options.maxLines) return lines;
  }
  const max = Math.max(1, options.maxLines ?? lines.length);
  return [...lines.slice(0, max - 1), fit(`… ${lines.length - max + 1} more lines: a taller terminal shows them`, width)];
}

function head(rollout: Rollout, options: ViewOptions, width: number): string[] {
  const lines = flow(title(rollout, options.now), { width, indent: "", maxLines: 2, overflow: () => " …" });
  if (options.notice) lines.push(...flow(words(clean(options.notice)), { width, indent: "", maxLines: 2, overflow: () => " …" }));
  const status = statusText(rollout, options.now);
  if (status) lines.push(...flow(words(status), { width, indent: "", maxLines: 3, overflow: () => " …" }));
  lines.push(...countLines(countHosts(rollout.hosts), width));
  return lines;
}

function title(rollout: Rollout, now: number): FlowItem[] {
  const phase = rollout.currentWave === 0 ? "prefetch" : `wave ${rollout.currentWave}/${rollout.waveCount}`;
  const elapsed = isFinished(rollout) ? `took ${formatDuration(rollout.updatedAtMs - rollout.createdAtMs)}` : formatDuration(now - rollout.createdAtMs);
  const parts = [`rollout ${rollout.id}`, clean(rollout.state), phase, elapsed, ...(rollout.environment ? [`env ${clean(rollout.environment)}`] : [])];
  return parts.map((text) => ({ text, separator: " · " }));
}

/** What the rollout is doing or waiting for, and the command that moves it on. */
function statusText(rollout: Rollout, now: number): string {
  const reason = clean(rollout.reason);
  const deadline = rollout.phaseDeadlineAtMs > 0 ? countdown("gives up", rollout.phaseDeadlineAtMs, now) : "";
  switch (rollout.state) {
    case "prefetching": {
      const fetched = rollout.hosts.filter((host) => host.state === "prefetched").length;
      return `prefetching closures: ${fetched}/${rollout.hosts.length} fetched${deadline ? ` · ${deadline}` : ""}`;
    }
    case "running":
      if (rollout.resumeAtMs > now)
        return `pause between waves: ${waveLabel(rollout, rollout.currentWave)} starts in ${formatDuration(rollout.resumeAtMs - now)}`;
      return "";
    case "paused":
      return `paused: ${reason || "by operator"} · go on with: ferry rollout resume ${rollout.id}`;
    case "waiting-gate":
      return `gate: ${waveLabel(rollout, rollout.currentWave)} is done; start ${waveLabel(rollout, rollout.currentWave + 1)} with: ferry rollout promote ${rollout.id}`;
    case "aborted":
    case "completed": {
      const switching = rollout.hosts.filter((host) => host.state === "activating" || host.state === "reverting").length;
      const tail = switching > 0 ? ` · waiting for ${switching} host(s) still switching` : "";
      return `${rollout.state}${reason ? `: ${reason}` : ""}${tail}`;
    }
    default:
      return reason ? `${clean(rollout.state)}: ${reason}` : "";
  }
}

function countdown(what: string, at: number, now: number): string {
  return at > now ? `${what} in ${formatDuration(at - now)}` : `${what} now`;
}

function countLines(counts: HostCounts, width: number): string[] {
  const items: FlowItem[] = countParts(counts).map((text, index) => ({ text: index === 0 ? `${counts.total} hosts: ${text}` : text, separator: " · " }));
  // Counts are never cut: they wrap onto as many lines as they need.
  return flow(items, { width, indent: "  ", maxLines: items.length, overflow: () => "" });
}

function waves(rollout: Rollout, options: ViewOptions, width: number, detail: Detail): string[] {
  const current = Math.max(1, rollout.currentWave);
  const lines: string[] = [];
  let folded: number[] = [];
  const flush = () => {
    if (folded.length > 0) lines.push(foldedLine(rollout, folded, width));
    folded = [];
  };
  for (let wave = 1; wave <= rollout.waveCount; wave++) {
    if (Math.abs(wave - current) > detail.foldBeyond) {
      folded.push(wave);
      continue;
    }
    flush();
    const hosts = rollout.hosts.filter((host) => host.wave === wave);
    lines.push(waveHeader(rollout, wave, hosts, options.now, width));
    const hostLines = wave === rollout.currentWave ? detail.currentHostLines : detail.otherHostLines;
    lines.push(...flow(hostItems(hosts), { width, indent: "      ", maxLines: hostLines, overflow: (left) => ` +${left} more` }));
  }
  flush();
  return lines;
}

function waveHeader(rollout: Rollout, wave: number, hosts: readonly RolloutHost[], now: number, width: number): string {
  const counts = countHosts(hosts);
  const marker = wave === rollout.currentWave && !hasEnded(rollout) ? "> " : "  ";
  const failed = counts.byCategory.failed > 0 ? ` · ${counts.byCategory.failed} failed` : "";
  const barWidth = width >= 100 ? 20 : width >= 50 ? 10 : 5;
  return fit(
    `${marker}${waveLabel(rollout, wave).padEnd(7)} ${bar(counts, barWidth)} ${counts.done}/${counts.total} done${failed}${waveTiming(rollout, wave, now)}`,
    width,
  );
}

/** The countdown that belongs to this wave, if any. */
function waveTiming(rollout: Rollout, wave: number, now: number): string {
  if (rollout.state === "running" && wave === rollout.currentWave) {
    if (rollout.resumeAtMs > now) return ` · starts in ${formatDuration(rollout.resumeAtMs - now)}`;
    if (rollout.phaseDeadlineAtMs > 0) return ` · ${countdown("deadline", rollout.phaseDeadlineAtMs, now)}`;
  }
  if (rollout.state === "waiting-gate" && wave === rollout.currentWave + 1) return " · waits for promote";
  return "";
}

function foldedLine(rollout: Rollout, folded: readonly number[], width: number): string {
  const set = new Set(folded);
  const counts = countHosts(rollout.hosts.filter((host) => set.has(host.wave)));
  const first = folded[0] as number;
  const last = folded[folded.length - 1] as number;
  const failed = counts.byCategory.failed > 0 ? ` · ${counts.byCategory.failed} failed` : "";
  return fit(`  waves ${first}-${last}: ${counts.done}/${counts.total} done${failed}`, width);
}

/** Bar cells: # confirmed, x failed, ~ reverting or reverted, - skipped, . not done yet. */
const GLYPH: Partial<Record<HostCategory, string>> = { confirmed: "#", failed: "x", reverting: "~", reverted: "~", skipped: "-" };

/**
 * A wave's bar reaches as far as its done count and is drawn by what each
 * done host became; every kind present gets at least one cell, so one failure
 * among a hundred hosts still shows.
 */
export function bar(counts: HostCounts, cells: number): string {
  if (counts.total === 0) return `[${" ".repeat(cells)}]`;
  const kinds = (["confirmed", "failed", "reverting", "reverted", "skipped"] as const).filter((category) => counts.byCategory[category] > 0);
  const reach = counts.done === counts.total ? cells : Math.min(cells - 1, Math.round((counts.done / counts.total) * cells));
  const share = kinds.map((category) => Math.max(1, Math.floor((counts.byCategory[category] / counts.done) * reach)));
  // Hand out what rounding left over, or take back what the minimum of one cell overspent, from the largest share.
  for (let total = share.reduce((a, b) => a + b, 0); total !== reach && share.length > 0;) {
    const largest = share.indexOf(Math.max(...share));
    if (total < reach) share[largest] = (share[largest] as number) + 1;
    else if ((share[largest] as number) > 1) share[largest] = (share[largest] as number) - 1;
    else break;
    total = share.reduce((a, b) => a + b, 0);
  }
  const filled = kinds
    .map((category, index) => (GLYPH[category] as string).repeat(share[index] as number))
    .join("")
    .slice(0, cells);
  return `[${filled}${".".repeat(cells - filled.length)}]`;
}

/** Most telling first: what is switching, what failed, then what waits, then what is settled. */
const PRIORITY: readonly HostCategory[] = ["reverting", "activating", "failed", "other", "prefetching", "waiting", "confirmed", "reverted", "skipped"];

/** The wave's hosts grouped by state: "activating web-3, web-5 · failed web-4 (E_HEALTH_CHECK_FAILED)". */
function hostItems(hosts: readonly RolloutHost[]): FlowItem[] {
  const sorted = [...hosts].sort(
    (a, b) => PRIORITY.indexOf(categoryOf(a.state)) - PRIORITY.indexOf(categoryOf(b.state)) || a.state.localeCompare(b.state) || a.name.localeCompare(b.name),
  );
  return sorted.map((host, index) => {
    const name = host.errorCode ? `${host.name} (${clean(host.errorCode)})` : host.name;
    const startsGroup = index === 0 || sorted[index - 1]?.state !== host.state;
    return startsGroup ? { text: `${clean(host.state)} ${name}`, separator: " · " } : { text: name, separator: ", " };
  });
}
