import type { HostLogLine } from "@ferry/protocol";

export interface HostLogLimits {
  /** Newest lines kept per host. */
  linesPerHost: number;
  /** Bytes kept per host (estimated from the strings' lengths). */
  bytesPerHost: number;
  /** Bytes kept over every host; past it the oldest lines of any host go first. */
  totalBytes: number;
}

export const DEFAULT_HOST_LOG_LIMITS: HostLogLimits = { linesPerHost: 1000, bytesPerHost: 512 * 1024, totalBytes: 32 * 1024 * 1024 };

/** Structured fields past this are left out of the held line; the controller's own log still has them. */
const MAX_FIELDS_CHARS = 8 * 1024;
/** What a line costs beyond its strings: the object, its slots in two queues. */
const LINE_OVERHEAD = 96;

interface Held {
  line: HostLogLine;
  bytes: number;
  gone: boolean;
}

/** An array used as a FIFO; the dead head is cut off once it is half the array. */
class Fifo<T> {
  private items: T[] = [];
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  peek(): T | undefined {
    return this.items[this.head];
  }

  shift(): T | undefined {
    const item = this.items[this.head];
    if (item === undefined) return undefined;
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  keep(predicate: (item: T) => boolean): void {
    this.items = this.items.slice(this.head).filter(predicate);
    this.head = 0;
  }

  toArray(): T[] {
    return this.items.slice(this.head);
  }
}

interface HostRing {
  lines: Fifo<Held>;
  bytes: number;
}

/**
 * The lines agents forward, held in memory per host for `ferry logs`: a
 * bounded ring per host and a bound over all hosts, so an agent flooding log
 * frames only pushes out its own (and, past the total, the oldest) lines.
 * Nothing is written to disk: a controller restart forgets them.
 */
export class HostLogs {
  private readonly hosts = new Map<string, HostRing>();
  /** Every held line in arrival order, for the total bound; lines dropped by their host's bound are skipped here. */
  private readonly arrival = new Fifo<Held>();
  private live = 0;
  private totalBytes = 0;
  private readonly followers = new Map<string, Set<(line: HostLogLine) => void>>();

  constructor(private readonly limits: HostLogLimits = DEFAULT_HOST_LOG_LIMITS) {}

  add(given: HostLogLine): void {
    const line = given.fieldsJson.length > MAX_FIELDS_CHARS ? { ...given, fieldsJson: "" } : given;
    const bytes = LINE_OVERHEAD + 2 * (line.hostName.length + line.level.length + line.message.length + line.rolloutId.length + line.fieldsJson.length);
    let ring = this.hosts.get(line.hostName);
    if (!ring) {
      ring = { lines: new Fifo(), bytes: 0 };
      this.hosts.set(line.hostName, ring);
    }
    const held: Held = { line, bytes, gone: false };
    ring.lines.push(held);
    ring.bytes += bytes;
    this.arrival.push(held);
    this.live++;
    this.totalBytes += bytes;
    while (ring.lines.size > 1 && (ring.lines.size > this.limits.linesPerHost || ring.bytes > this.limits.bytesPerHost)) {
      this.drop(ring, ring.lines.shift() as Held);
    }
    while (this.totalBytes > this.limits.totalBytes && this.arrival.size > 1) {
      const oldest = this.arrival.shift() as Held;
      if (oldest.gone) continue;
      // A host's lines leave in arrival order, so the globally oldest live line is its host's oldest.
      const owner = this.hosts.get(oldest.line.hostName) as HostRing;
      owner.lines.shift();
      this.drop(owner, oldest);
    }
    // Lines a host's own bound dropped still sit in the arrival queue; a flood would grow it without this.
    if (this.arrival.size > 2 * this.live + 1024) this.arrival.keep((item) => !item.gone);
    for (const follower of this.followers.get(line.hostName) ?? []) follower(line);
  }

  private drop(ring: HostRing, held: Held): void {
    held.gone = true;
    ring.bytes -= held.bytes;
    this.live--;
    this.totalBytes -= held.bytes;
    if (ring.lines.size === 0) this.hosts.delete(held.line.hostName);
  }

  /** The host's held lines, oldest first. */
  lines(hostName: string): HostLogLine[] {
    return (this.hosts.get(hostName)?.lines.toArray() ?? []).map((held) => held.line);
  }

  /** Calls `follower` with each new line of the host until the returned function is called. */
  follow(hostName: string, follower: (line: HostLogLine) => void): () => void {
    let set = this.followers.get(hostName);
    if (!set) {
      set = new Set();
      this.followers.set(hostName, set);
    }
    set.add(follower);
    return () => {
      set.delete(follower);
      if (set.size === 0 && this.followers.get(hostName) === set) this.followers.delete(hostName);
    };
  }

  /** What is held, for tests and metrics. */
  usage(): { lines: number; bytes: number; hosts: number; queued: number } {
    return { lines: this.live, bytes: this.totalBytes, hosts: this.hosts.size, queued: this.arrival.size };
  }
}
