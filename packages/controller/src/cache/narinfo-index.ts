import { readdirSync, readFileSync, watch, type FSWatcher } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "@ferry/core";

export const NARINFO_FILE = /^([0-9a-z]{32})\.narinfo$/;

/**
 * How long a hash the disk lacked is answered "missing" without looking
 * again. Nix asks for many narinfos a cache does not hold (a flood of 404s is
 * normal traffic), and an open() that fails costs ~15 µs of the thread pool
 * on a local disk and a round trip on NFS; a second of delay before another
 * replica's write is seen costs nothing, since its uploader reads back
 * through that replica.
 */
const MISS_TTL_MS = 1000;
/** Remembered misses at most; past that they are forgotten at once (a flood of random hashes then costs one read each, like a static server). */
const MAX_MISSES = 100_000;

/**
 * Every narinfo of the cache directory in memory, by store hash: a lookup
 * (hit or miss) costs no syscall, which is what lets narinfo requests, most
 * of a substituter's traffic, keep up with a static server. The cache's own
 * writers (PUT, bundle publish, removal) update it as they change the
 * directory; a watch on the directory catches changes made by hand, which
 * converge to what the disk holds.
 *
 * A directory shared by several controllers (NFS and the like) changes
 * behind the watch, which sees only this machine's writes. So a miss looks
 * on disk before it is one (lookup), and is then remembered for MISS_TTL_MS;
 * an entry another replica removed is dropped when a NAR it names turns out
 * to be gone (dropNar) and at each collection (resync). Re-validating every
 * entry with a stat on a timer was measured against this: ~8 µs per stat on a
 * local disk (0.8 s of the thread pool per pass over 100,000 narinfos) and a
 * network round trip each on NFS, spent whether or not anything changed; a
 * failed NAR download is rare and names exactly what to re-read. The hit
 * path stays a map lookup.
 */
export interface NarInfoIndexOptions {
  /** false stands in for a directory another machine writes (NFS), whose changes no watch reports. */
  watch?: boolean;
  /**
   * Told of each narinfo this process stored, changed or removed, after the
   * fact: what replicas sharing the directory must re-read (refresh), since
   * a hit is answered from memory and a signature added elsewhere would
   * otherwise stay unseen until a restart.
   */
  onLocalChange?: (hash: string) => void;
}

export class NarInfoIndex {
  private readonly texts = new Map<string, Buffer>();
  /** Hashes with a reload in flight, stamped by the latest change: a reload overtaken by a later change is dropped. */
  private readonly stamps = new Map<string, number>();
  private stamp = 0;
  private watcher: FSWatcher | undefined;
  /** NAR name → the hashes whose narinfo names it, so a missing NAR finds its narinfos without a scan. */
  private readonly byNar = new Map<string, Set<string>>();
  /** Hashes the disk lacked lately (see MISS_TTL_MS); cleared wholesale by a timer. */
  private misses = new Set<string>();
  private readonly missTimer: NodeJS.Timeout;
  /** Disk lookups in flight, shared by concurrent requests for the same hash. */
  private readonly looking = new Map<string, Promise<Buffer | undefined>>();

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
    private readonly options: NarInfoIndexOptions = {},
  ) {
    for (const name of readdirSync(dir)) {
      const hash = NARINFO_FILE.exec(name)?.[1];
      if (!hash) continue;
      try {
        this.put(hash, readFileSync(join(dir, name)));
      } catch {
        // removed while we listed: not there
      }
    }
    this.missTimer = setInterval(() => (this.misses = new Set()), MISS_TTL_MS);
    this.missTimer.unref();
    if (options.watch === false) return;
    try {
      this.watcher = watch(dir, { persistent: false }, (_event, name) => {
        const hash = typeof name === "string" ? NARINFO_FILE.exec(name)?.[1] : undefined;
        if (hash) void this.reload(hash);
      });
      this.watcher.on("error", (error) =>
        this.log.warn({ err: String(error) }, "cache directory watch failed; changes made by hand are not seen until restart"),
      );
    } catch (error) {
      this.log.warn({ err: String(error) }, "cannot watch the cache directory; changes made by hand are not seen until restart");
    }
  }

  get size(): number {
    return this.texts.size;
  }

  get(hash: string): Buffer | undefined {
    return this.texts.get(hash);
  }

  /**
   * The narinfo of `hash`, from memory or else from disk (another replica's
   * write): undefined only when neither holds it.
   */
  async lookup(hash: string): Promise<Buffer | undefined> {
    const known = this.texts.get(hash);
    if (known !== undefined || this.misses.has(hash)) return known;
    let pending = this.looking.get(hash);
    if (!pending) {
      pending = this.reload(hash).then(() => {
        this.looking.delete(hash);
        const found = this.texts.get(hash);
        if (found === undefined) {
          if (this.misses.size >= MAX_MISSES) this.misses = new Set();
          this.misses.add(hash);
        }
        return found;
      });
      this.looking.set(hash, pending);
    }
    return pending;
  }

  /** Re-reads the narinfos naming `narName`, which is gone from disk: removed by another replica, they are dropped. */
  async dropNar(narName: string): Promise<void> {
    const hashes = this.byNar.get(narName);
    if (hashes) await Promise.all([...hashes].map((hash) => this.reload(hash)));
  }

  /**
   * Takes the narinfos other replicas added or removed since (a collection's
   * view of the directory). One listing: a narinfo known here is not read
   * again, since another replica changes only its signatures, which a
   * collection does not look at.
   */
  async resync(): Promise<void> {
    const listed = new Set<string>();
    for (const name of await readdir(this.dir)) {
      const hash = NARINFO_FILE.exec(name)?.[1];
      if (hash) listed.add(hash);
    }
    const hashes = [...listed].filter((hash) => !this.texts.has(hash));
    for (const hash of this.texts.keys()) if (!listed.has(hash)) hashes.push(hash);
    // Bounded: a directory of 100,000 narinfos must not open them all at once.
    const queue = hashes;
    const worker = async (): Promise<void> => {
      for (let hash = queue.pop(); hash !== undefined; hash = queue.pop()) await this.reload(hash);
    };
    await Promise.all(Array.from({ length: 16 }, worker));
  }

  set(hash: string, text: Buffer): void {
    this.overtake(hash);
    this.put(hash, text);
    this.options.onLocalChange?.(hash);
  }

  delete(hash: string): void {
    this.overtake(hash);
    this.remove(hash);
    this.options.onLocalChange?.(hash);
  }

  private put(hash: string, text: Buffer): void {
    this.remove(hash);
    this.texts.set(hash, text);
    this.misses.delete(hash);
    const url = narUrlOf(text);
    if (url === undefined) return;
    const hashes = this.byNar.get(url) ?? new Set<string>();
    hashes.add(hash);
    this.byNar.set(url, hashes);
  }

  private remove(hash: string): void {
    const text = this.texts.get(hash);
    if (text === undefined) return;
    this.texts.delete(hash);
    const url = narUrlOf(text);
    const hashes = url === undefined ? undefined : this.byNar.get(url);
    hashes?.delete(hash);
    if (hashes?.size === 0) this.byNar.delete(url as string);
  }

  entries(): ReadonlyMap<string, Buffer> {
    return this.texts;
  }

  /** The NAR file every narinfo names (its URL line). */
  narUrls(): Set<string> {
    return new Set(this.byNar.keys());
  }

  /** Hashes whose narinfo names `url` as its NAR. */
  namingNar(url: string): string[] {
    return [...(this.byNar.get(url) ?? [])];
  }

  /** Takes what the disk holds for `hash` now. */
  async reload(hash: string): Promise<void> {
    const started = ++this.stamp;
    this.stamps.set(hash, started);
    const text = await readFile(join(this.dir, `${hash}.narinfo`)).catch(() => undefined);
    if (this.stamps.get(hash) !== started) return;
    this.stamps.delete(hash);
    if (text === undefined) this.remove(hash);
    else this.put(hash, text);
  }

  private overtake(hash: string): void {
    if (this.stamps.has(hash)) this.stamps.set(hash, ++this.stamp);
  }

  close(): void {
    clearInterval(this.missTimer);
    this.watcher?.close();
    this.watcher = undefined;
  }
}

/** The URL line of a narinfo text (the NAR it names), without parsing the rest. */
function narUrlOf(text: Buffer): string | undefined {
  const line = text.indexOf("\nURL: ");
  const start = text.toString("latin1", 0, 5) === "URL: " ? 5 : line < 0 ? -1 : line + 6;
  if (start < 0) return undefined;
  const end = text.indexOf("\n", start);
  return text.toString("utf8", start, end < 0 ? text.length : end).trim();
}
