// Turns what the simulated agents reported (sim-fleet.ts) into the bench's
// figures: publish→desired latencies, rollout waves, link recovery.
import type { AtTuple, DesiredTuple, ResultTuple } from "./messages.js";
import { spread, type Spread } from "./measure.js";

export interface DesiredFilter {
  activate: boolean;
  /** "" for a plain deploy. */
  rolloutId: string;
  sinceMs: number;
}

/** Per agent, the first new desired frame matching `filter`: when it arrived and its serial. */
export function firstDesired(events: readonly DesiredTuple[], filter: DesiredFilter): Map<number, { atMs: number; serial: number }> {
  const first = new Map<number, { atMs: number; serial: number }>();
  for (const [index, atMs, serial, activate, rolloutId, fresh] of events) {
    if (fresh !== 1 || atMs < filter.sinceMs || activate !== (filter.activate ? 1 : 0) || rolloutId !== filter.rolloutId) continue;
    const seen = first.get(index);
    if (!seen || atMs < seen.atMs) first.set(index, { atMs, serial });
  }
  return first;
}

/** Per agent, when it first sent a result in `phase` for the serial `desired` gave it. */
export function firstResults(events: readonly ResultTuple[], desired: ReadonlyMap<number, { serial: number }>, phase: number): Map<number, number> {
  const first = new Map<number, number>();
  for (const [index, atMs, serial, resultPhase] of events) {
    if (resultPhase !== phase || desired.get(index)?.serial !== serial) continue;
    const seen = first.get(index);
    if (seen === undefined || atMs < seen) first.set(index, atMs);
  }
  return first;
}

export function latencies(arrivals: ReadonlyMap<number, { atMs: number }>, fromMs: number, only?: (index: number) => boolean): Spread {
  const values: number[] = [];
  for (const [index, { atMs }] of arrivals) if (!only || only(index)) values.push(atMs - fromMs);
  return spread(values);
}

export function latest(times: Iterable<number>): number {
  let max = NaN;
  for (const time of times) if (!(time <= max)) max = time;
  return max;
}

export interface WaveFigures {
  wave: number;
  size: number;
  /** When the wave could start: the previous wave's (or the prefetch's) last result; NaN if that never came. */
  eligibleAtMs: number;
  /** Desired frames, from eligibility. */
  desired: Spread;
  /** Hosts of the wave that reported ACTIVE. */
  active: number;
  /** Last ACTIVE result of the wave, from eligibility. */
  doneMs: number;
}

/**
 * Rollout waves planned by name (names sort in index order): wave w holds
 * indices [(w-1)·batch, w·batch). Each wave is timed from the moment it
 * became eligible, the last result of the step before it.
 */
export function waveFigures(options: {
  total: number;
  batch: number;
  prefetchDoneAtMs: number;
  activations: ReadonlyMap<number, { atMs: number; serial: number }>;
  activeAt: ReadonlyMap<number, number>;
}): WaveFigures[] {
  const waves: WaveFigures[] = [];
  let eligibleAtMs = options.prefetchDoneAtMs;
  for (let start = 0, wave = 1; start < options.total; start += options.batch, wave++) {
    const end = Math.min(options.total, start + options.batch);
    const inWave = (index: number): boolean => index >= start && index < end;
    const active = [...options.activeAt].filter(([index]) => inWave(index));
    const doneAt = active.length === end - start ? latest(active.map(([, atMs]) => atMs)) : NaN;
    waves.push({
      wave,
      size: end - start,
      eligibleAtMs,
      desired: Number.isNaN(eligibleAtMs) ? spread([]) : latencies(options.activations, eligibleAtMs, inWave),
      active: active.length,
      doneMs: doneAt - eligibleAtMs,
    });
    eligibleAtMs = doneAt;
  }
  return waves;
}

export interface Recovery {
  dropped: number;
  within10s: number;
  within60s: number;
  /** Until the last one was back; NaN when not all were by the deadline. */
  allBackMs: number;
  back: number;
}

/** How fast the given agents were welcomed again after `sinceMs`. */
export function recovery(welcomed: readonly AtTuple[], indices: ReadonlySet<number> | "all", total: number, sinceMs: number): Recovery {
  const back = new Map<number, number>();
  for (const [index, atMs] of welcomed) {
    if (atMs < sinceMs || (indices !== "all" && !indices.has(index)) || back.has(index)) continue;
    back.set(index, atMs - sinceMs);
  }
  const delays = [...back.values()];
  const dropped = indices === "all" ? total : indices.size;
  return {
    dropped,
    within10s: delays.filter((ms) => ms <= 10_000).length,
    within60s: delays.filter((ms) => ms <= 60_000).length,
    allBackMs: back.size === dropped ? latest(delays) : NaN,
    back: back.size,
  };
}
