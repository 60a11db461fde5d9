/** The shortest reconnect ceiling; the first retry waits between half of it and twice it. */
export const RECONNECT_MIN_DELAY_MS = 500;

/**
 * How long to wait before the next connection attempt, after `failures`
 * consecutive failed links (at least 1) over `urlCount` controller URLs.
 * The ceiling doubles once per full round of URLs that all failed, so a dead
 * replica costs one short wait before the next is tried; with one URL this is
 * the plain capped exponential backoff. "Full jitter" (uniformly random below
 * the ceiling) keeps a fleet that lost the same replica from arriving at the
 * next one at the same moment.
 */
export function reconnectDelayMs(failures: number, urlCount: number, maxDelayMs: number, random: () => number): number {
  const roundsFailed = failures % urlCount === 0 ? failures / urlCount : 1;
  const ceiling = Math.min(maxDelayMs, RECONNECT_MIN_DELAY_MS * 2 ** Math.min(Math.max(roundsFailed, 1), 16));
  return Math.max(RECONNECT_MIN_DELAY_MS / 2, random() * ceiling);
}

/**
 * Which controller URL the agent link uses, and how long it waits after a
 * failure. The link fails over to the next URL in the list on any failure
 * (refused, handshake timeout, closed, even after a welcome); a welcome
 * starts a fresh round.
 */
export class ControllerRotation {
  private index: number;
  private failures = 0;

  constructor(
    readonly urls: readonly string[],
    private readonly maxDelayMs: number,
    private readonly random: () => number = Math.random,
  ) {
    if (urls.length === 0) throw new Error("ControllerRotation needs at least one URL");
    // A random start spreads a fleet over the replicas: each holds about 1/n of
    // the links, and losing one moves only its share instead of every agent
    // (had they all started at the first URL, they would all sit on it and all
    // move at once). The list's order is a failover order only after that.
    this.index = Math.min(urls.length - 1, Math.floor(random() * urls.length));
  }

  /** The URL of the next (or current) connection attempt. */
  get url(): string {
    return this.urls[this.index] as string;
  }

  /** Consecutive failures since the last welcome. */
  get failed(): number {
    return this.failures;
  }

  /** The controller welcomed the agent: the next failure starts a new round, at the shortest delay. */
  welcomed(): void {
    this.failures = 0;
  }

  /** The link to `url` failed: moves to the next URL and returns the delay before trying it. */
  fail(): number {
    this.failures += 1;
    this.index = (this.index + 1) % this.urls.length;
    return reconnectDelayMs(this.failures, this.urls.length, this.maxDelayMs, this.random);
  }
}
