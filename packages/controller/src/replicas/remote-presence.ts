import { LAST_SEEN_FLUSH_MS } from "../hub/report-writer.js";
import type { HostRecord } from "../store/state-store.js";

/**
 * Agents connected to other replicas, as their last-seen times in the
 * database say. Those are written every LAST_SEEN_FLUSH_MS, so a host counts
 * as online here while its last sign of life is younger than that plus two
 * heartbeats; an agent that left another replica is seen offline here that
 * much later.
 */
export class RemotePresence {
  private readonly lastSeen = new Map<string, number>();

  constructor(
    private readonly heartbeatIntervalMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  seen(host: HostRecord): void {
    if (host.lastSeenMs > (this.lastSeen.get(host.name) ?? 0)) this.lastSeen.set(host.name, host.lastSeenMs);
  }

  isOnline(name: string): boolean {
    const seen = this.lastSeen.get(name);
    return seen !== undefined && this.now() - seen < LAST_SEEN_FLUSH_MS + 2 * this.heartbeatIntervalMs;
  }

  lastSeenMs(name: string): number {
    return this.lastSeen.get(name) ?? 0;
  }
}
