import type { Logger } from "@ferry/core";
import type { HostRecord, StateStore } from "../store/state-store.js";

/** A notification may be lost with its session: read anyway this often. */
const POLL_MS = 5000;
/** Notifications close together (a wave's reports) are read once. */
const COALESCE_MS = 10;

export interface HostFeedDeps {
  store: Pick<StateStore, "changesSince">;
  /** Sends the desired system to the host's agent if it is connected here and has not been sent this serial. */
  offerDesired(host: HostRecord): void;
  /** A change that matters to rollouts and views: desired, phase, applied serial or current system. */
  changed(hosts: readonly HostRecord[]): void;
  /** Last sign of life another replica recorded. */
  seen(host: HostRecord): void;
  log: Logger;
}

/**
 * What other replicas committed, read by the change clock: each host record
 * changed since the value last read is offered to this replica's agents and
 * announced to its rollout engine and views. A host changed twice is read
 * once, in its latest state.
 */
export class HostFeed {
  private seq = 0;
  private readonly fingerprints = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private pending: NodeJS.Timeout | undefined;
  private reading: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(private readonly deps: HostFeedDeps) {}

  /** Starts from the clock as it stands: what happened before is in the store already. */
  async start(): Promise<void> {
    const initial = await this.deps.store.changesSince(Number.MAX_SAFE_INTEGER);
    this.seq = initial.seq;
    this.timer = setInterval(() => this.request(), POLL_MS);
    this.timer.unref();
  }

  request(): void {
    if (this.stopped || this.pending) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      void this.read();
    }, COALESCE_MS);
  }

  /** Reads what changed since the last read; one read at a time, one more queued at most. */
  read(): Promise<void> {
    if (this.reading) {
      this.again = true;
      return this.reading;
    }
    this.reading = this.readOnce()
      .catch((error: unknown) => this.deps.log.warn({ err: error instanceof Error ? error.message : String(error) }, "reading other replicas' changes failed"))
      .finally(() => {
        this.reading = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          void this.read();
        }
      });
    return this.reading;
  }

  private async readOnce(): Promise<void> {
    const { hosts, seq } = await this.deps.store.changesSince(this.seq);
    this.seq = seq;
    const changed: HostRecord[] = [];
    for (const host of hosts) {
      this.deps.seen(host);
      if (host.desiredSerial > 0) this.deps.offerDesired(host);
      const fingerprint = `${host.desiredSerial}/${host.appliedSerial}/${host.phase}/${host.currentSystem}/${host.lastErrorCode}`;
      if (this.fingerprints.get(host.name) !== fingerprint) {
        this.fingerprints.set(host.name, fingerprint);
        changed.push(host);
      }
    }
    if (changed.length > 0) this.deps.changed(changed);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.pending);
    await this.reading;
  }
}
