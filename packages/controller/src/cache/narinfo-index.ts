import { readdirSync, readFileSync, watch, type FSWatcher } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "@ferry/core";

export const NARINFO_FILE = /^([0-9a-z]{32})\.narinfo$/;

/**
 * Every narinfo of the cache directory in memory, by store hash: a lookup
 * (hit or miss) costs no syscall, which is what lets narinfo requests, most
 * of a substituter's traffic, keep up with a static server. The cache's own
 * writers (PUT, bundle publish, removal) update it as they change the
 * directory; a watch on the directory catches changes made by hand, which
 * converge to what the disk holds.
 */
export class NarInfoIndex {
  private readonly texts = new Map<string, Buffer>();
  /** Hashes with a reload in flight, stamped by the latest change: a reload overtaken by a later change is dropped. */
  private readonly stamps = new Map<string, number>();
  private stamp = 0;
  private watcher: FSWatcher | undefined;

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
  ) {
    for (const name of readdirSync(dir)) {
      const hash = NARINFO_FILE.exec(name)?.[1];
      if (!hash) continue;
      try {
        this.texts.set(hash, readFileSync(join(dir, name)));
      } catch {
        // removed while we listed: not there
      }
    }
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

  set(hash: string, text: Buffer): void {
    this.overtake(hash);
    this.texts.set(hash, text);
  }

  delete(hash: string): void {
    this.overtake(hash);
    this.texts.delete(hash);
  }

  entries(): ReadonlyMap<string, Buffer> {
    return this.texts;
  }

  /** The NAR file every narinfo names (its URL line), in one pass. */
  narUrls(): Set<string> {
    const urls = new Set<string>();
    for (const text of this.texts.values()) {
      const line = text.indexOf("\nURL: ");
      const start = text.toString("latin1", 0, 5) === "URL: " ? 5 : line < 0 ? -1 : line + 6;
      if (start < 0) continue;
      const end = text.indexOf("\n", start);
      urls.add(text.toString("utf8", start, end < 0 ? text.length : end).trim());
    }
    return urls;
  }

  /** Hashes whose narinfo names `url` as its NAR. */
  namingNar(url: string): string[] {
    const needle = `URL: ${url}\n`;
    const found: string[] = [];
    for (const [hash, text] of this.texts) if (text.includes(needle)) found.push(hash);
    return found;
  }

  /** Takes what the disk holds for `hash` now. */
  async reload(hash: string): Promise<void> {
    const started = ++this.stamp;
    this.stamps.set(hash, started);
    const text = await readFile(join(this.dir, `${hash}.narinfo`)).catch(() => undefined);
    if (this.stamps.get(hash) !== started) return;
    this.stamps.delete(hash);
    if (text === undefined) this.texts.delete(hash);
    else this.texts.set(hash, text);
  }

  private overtake(hash: string): void {
    if (this.stamps.has(hash)) this.stamps.set(hash, ++this.stamp);
  }

  close(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }
}
