import type { HostReport, HostReportEntry, StateStore } from "../store/state-store.js";

interface Waiting {
  entry: HostReportEntry;
  settle: (error?: unknown) => void;
}

/**
 * How long a report waits for others to share its transaction. Each commit
 * syncs to disk while the event loop waits (a few ms on common disks), so
 * committing every turn under a wave of results left heartbeats unanswered;
 * a short window turns a thousand results into a few commits.
 */
const GROUP_WINDOW_MS = 10;

/** How long a heartbeat's last-seen time may wait in memory before it is written. */
export const LAST_SEEN_FLUSH_MS = 15_000;

/**
 * Agents' reports, written in groups. A result or a phase change is durable
 * before its sender goes on (the caller awaits the transaction that holds
 * it), but every report that arrived while the previous transaction ran
 * shares the next one: a thousand results cost one sync to disk, not a
 * thousand. Heartbeats only move a host's last-seen time; that is kept in
 * memory and written every LAST_SEEN_FLUSH_MS, since a last-seen time lost
 * in a crash costs nothing.
 */
export class ReportWriter {
  private queue: Waiting[] = [];
  private scheduled = false;
  private readonly lastSeen = new Map<string, number>();
  private readonly unwritten = new Set<string>();
  private readonly timer: NodeJS.Timeout;
  private inflight: Promise<void> = Promise.resolve();

  constructor(private readonly store: Pick<StateStore, "recordReports">) {
    this.timer = setInterval(() => void this.writeLastSeen().catch(() => undefined), LAST_SEEN_FLUSH_MS);
    this.timer.unref();
  }

  /** Resolves once the report is on disk. */
  write(name: string, report: HostReport, event?: HostReportEntry["event"]): Promise<void> {
    if (report.lastSeenMs !== undefined) this.seen(name, report.lastSeenMs, false);
    return new Promise((resolve, reject) => {
      this.queue.push({ entry: { name, report, event }, settle: (error) => (error === undefined ? resolve() : reject(error)) });
      if (!this.scheduled) {
        this.scheduled = true;
        setTimeout(() => this.flush(), GROUP_WINDOW_MS);
      }
    });
  }

  /** A sign of life: remembered now, written later. */
  seen(name: string, atMs: number, unwritten = true): void {
    this.lastSeen.set(name, Math.max(atMs, this.lastSeen.get(name) ?? 0));
    if (unwritten) this.unwritten.add(name);
    else this.unwritten.delete(name);
  }

  /** The newest sign of life this process saw, written or not; 0 if none. */
  lastSeenMs(name: string): number {
    return this.lastSeen.get(name) ?? 0;
  }

  private flush(): void {
    const batch = this.queue;
    this.queue = [];
    this.scheduled = false;
    let failure: unknown;
    this.inflight = this.store
      .recordReports(batch.map((waiting) => waiting.entry))
      .catch((error: unknown) => {
        failure = error ?? new Error("report write failed");
      })
      .finally(() => {
        for (const waiting of batch) waiting.settle(failure);
      });
  }

  private async writeLastSeen(): Promise<void> {
    if (this.unwritten.size === 0) return;
    const entries = [...this.unwritten].map((name) => ({ name, report: { lastSeenMs: this.lastSeen.get(name) ?? 0 } }));
    this.unwritten.clear();
    await this.store.recordReports(entries);
  }

  /** Writes what is still in memory; call before closing the store. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    if (this.queue.length > 0) this.flush();
    await this.inflight;
    await this.writeLastSeen();
  }
}
