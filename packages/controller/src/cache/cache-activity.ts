/**
 * What the cache is doing right now, for garbage collection to keep: uploads
 * and NAR downloads in progress (keyed by the narinfo's store hash or the
 * NAR's cache-relative name), and the narinfos served lately. A substituter
 * asks for every narinfo of a closure before it downloads the first NAR, so a
 * path whose narinfo was served a moment ago is one an agent is fetching,
 * even between two requests.
 */
export class CacheActivity {
  private readonly running = new Map<string, number>();
  /** Store hash → when its narinfo was last served. At most one entry per narinfo in the cache. */
  private readonly served = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Marks `key` busy until the returned function is called (once). */
  begin(key: string): () => void {
    this.running.set(key, (this.running.get(key) ?? 0) + 1);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      const left = (this.running.get(key) ?? 1) - 1;
      if (left > 0) this.running.set(key, left);
      else this.running.delete(key);
    };
  }

  busy(key: string): boolean {
    return this.running.has(key);
  }

  /** Every busy store hash (narinfo uploads); NAR names are asked for one by one. */
  busyHashes(): string[] {
    return [...this.running.keys()].filter((key) => !key.startsWith("nar/"));
  }

  noteServed(hash: string): void {
    this.served.set(hash, this.now());
  }

  /** Hashes served at or after `sinceMs`; older entries are forgotten. */
  servedSince(sinceMs: number): string[] {
    const recent: string[] = [];
    for (const [hash, atMs] of this.served) {
      if (atMs >= sinceMs) recent.push(hash);
      else this.served.delete(hash);
    }
    return recent;
  }
}
