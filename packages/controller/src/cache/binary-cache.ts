import { mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { open, readFile, rename, stat, unlink } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import type { IncomingMessage, ServerResponse } from "node:http";
import { refuseUpload } from "../edge/refuse-upload.js";
import {
  FerryError,
  Turns,
  toFerryError,
  assertStoreHash,
  assertStorePath,
  parseNarInfo,
  parseStorePath,
  writeFully,
  type Logger,
  type NarInfo,
} from "@ferry/core";
import { mergeNarInfoUpload } from "./narinfo-merge.js";
import { NARINFO_FILE, NarInfoIndex, type NarInfoIndexOptions } from "./narinfo-index.js";
import { sendFile } from "./send-file.js";
import { CacheActivity } from "./cache-activity.js";
import type { ClosureSource } from "./closure-source.js";
import type { CollectionGuard } from "../replicas/coordination.js";
import { directorySweep } from "./cache-sweep.js";
import { NAR_FILE, syncDirectory } from "./cache-files.js";
import { withGcLock } from "./gc-lock.js";

const NIX_CACHE_INFO = "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n";
const MAX_NARINFO_BYTES = 64 * 1024;
/** Temp files of uploads in flight; ones left by a crash are removed at start. */
const UPLOAD_TEMP_PREFIX = ".upload-";
/**
 * A temp file untouched this long is a crash's leftover; a younger one may be
 * another replica's upload in flight, in a directory they share (each write
 * of an upload touches it).
 */
const STALE_UPLOAD_MS = 3_600_000;
/** HTTP status of a refused cache request, by error code; other refusals are 400, bugs 500. */
const CACHE_STATUS: Partial<Record<string, number>> = { E_CACHE_CONFLICT: 409, E_NO_SPACE: 507 };
const AUTH_CHALLENGE = { "www-authenticate": 'Basic realm="ferry-cache"' };

/** Admits an upload: returns the uploading token's name, or throws E_AUTH (no valid token) or E_SCOPE. */
export type UploadAdmission = () => string;
/** Told of each narinfo an upload stored, with the uploading token's name (the audit trail). */
export type UploadRecorder = (uploader: string, storePath: string) => void;

/** A file of the cache directory as garbage collection sees it. */
export interface CacheFileInfo {
  size: number;
  mtimeMs: number;
}

/**
 * What garbage collection may see and do, only while it holds the cache's
 * write lock (BinaryCache.sweep): no narinfo is stored or removed meanwhile,
 * so what it reads stays true until it lets go.
 */
export interface CacheSweep {
  /** Every narinfo text, by store hash. */
  narInfos(): ReadonlyMap<string, Buffer>;
  /** Every NAR file under nar/, by cache-relative name (nar/….nar.zst). */
  narFiles(): Promise<Map<string, CacheFileInfo>>;
  narInfoFile(hash: string): Promise<CacheFileInfo | undefined>;
  readonly activity: CacheActivity;
  /** Removes narinfos (readers stop finding them at once), then makes that durable. */
  deleteNarInfos(hashes: readonly string[]): Promise<void>;
  /** Removes NAR files, skipping any a remaining narinfo names or a transfer is using; returns those removed. */
  deleteNars(names: readonly string[]): Promise<string[]>;
}

/**
 * A standard Nix HTTP binary cache over a directory: what `nix copy --to`
 * uploads with PUT, agents substitute from with GET. Files appear atomically
 * (temp file + rename), and a narinfo is only accepted once its NAR is there,
 * so a reader never sees a narinfo that points at a missing or partial NAR.
 * A narinfo uploaded again for the same contents adds its signatures; for
 * other contents it is refused (E_CACHE_CONFLICT).
 */
export class BinaryCache implements ClosureSource {
  /** Narinfo writes and removals, one at a time: each reads what the one before wrote. */
  private readonly writes = new Turns();
  private readonly index: NarInfoIndex;
  /** Uploads and downloads in progress, and narinfos served lately: what garbage collection keeps. */
  readonly activity = new CacheActivity();

  constructor(
    readonly dir: string,
    private readonly recordUpload: UploadRecorder,
    private readonly log: Logger,
    options: NarInfoIndexOptions = {},
  ) {
    mkdirSync(join(dir, "nar"), { recursive: true });
    // None of this controller's uploads is in flight before it listens: an old temp file is a crash's leftover.
    for (const name of readdirSync(dir)) {
      if (!name.startsWith(UPLOAD_TEMP_PREFIX)) continue;
      const touched = statSync(join(dir, name), { throwIfNoEntry: false })?.mtimeMs;
      if (touched !== undefined && Date.now() - touched > STALE_UPLOAD_MS) rmSync(join(dir, name), { force: true });
    }
    this.index = new NarInfoIndex(dir, log, options);
    log.info({ narinfos: this.index.size }, "cache index loaded");
  }

  close(): void {
    this.index.close();
  }

  /**
   * Re-reads these narinfos from disk: another controller sharing the
   * directory changed them (its onLocalChange, relayed between replicas).
   */
  async refresh(hashes: Iterable<string>): Promise<void> {
    for (const hash of hashes) await this.index.reload(assertStoreHash(hash));
  }

  /** Serves a request whose path starts with the cache prefix; `relative` has no leading slash. */
  async handle(request: IncomingMessage, response: ServerResponse, relative: string, admitUpload: UploadAdmission): Promise<void> {
    try {
      if (request.method === "GET" || request.method === "HEAD") return await this.serve(request, response, relative);
      if (request.method === "PUT") return await this.upload(request, response, relative, admitUpload);
      response.writeHead(405, { allow: "GET, HEAD, PUT" }).end();
    } catch (error) {
      const ferry = toFerryError(error);
      if (clientLeft(error)) {
        // The client hung up (an aborted upload or download): routine, and no one is left to answer.
        this.log.debug({ err: ferry.message, path: relative, method: request.method }, "client left during a cache request");
        return;
      }
      this.log.warn({ err: ferry.message, code: ferry.code, path: relative, method: request.method }, "cache request failed");
      const status = CACHE_STATUS[ferry.code] ?? (ferry.code === "E_INTERNAL" ? 500 : 400);
      if (!response.headersSent) response.writeHead(status, { "content-type": "text/plain" });
      response.end(`${ferry.code}: ${ferry.message}\n`);
    }
  }

  private async serve(request: IncomingMessage, response: ServerResponse, relative: string): Promise<void> {
    const headOnly = request.method === "HEAD";
    if (relative === "nix-cache-info") {
      response.writeHead(200, { "content-type": "text/x-nix-cache-info", "content-length": NIX_CACHE_INFO.length });
      response.end(headOnly ? undefined : NIX_CACHE_INFO);
      return;
    }
    const narinfo = NARINFO_FILE.exec(relative);
    if (narinfo) {
      // A hit answers from memory; only a miss waits for the disk (another replica's write?).
      const text = this.index.get(narinfo[1] as string) ?? (await this.index.lookup(narinfo[1] as string));
      if (!text) {
        response.writeHead(404).end();
        return;
      }
      this.activity.noteServed(narinfo[1] as string);
      response.writeHead(200, { "content-type": "text/x-nix-narinfo", "content-length": text.length });
      response.end(headOnly ? undefined : text);
      return;
    }
    if (!NAR_FILE.test(relative)) {
      response.writeHead(404).end();
      return;
    }
    // Once open, the file stays readable to the end even if collected meanwhile; busy, it is not collected.
    const done = this.activity.begin(relative);
    const sent = await sendFile(join(this.dir, relative), response, "application/x-nix-nar", headOnly).finally(done);
    if (!sent) {
      // Gone from a directory another replica collects: its narinfos must not send more substituters here.
      await this.index.dropNar(relative);
      response.writeHead(404).end();
    }
    // A substituter that stops reading (it had the path already, or was interrupted) is routine.
    else if (!sent.complete) this.log.debug({ path: relative }, "client left before the NAR was sent");
  }

  private async upload(request: IncomingMessage, response: ServerResponse, relative: string, admitUpload: UploadAdmission): Promise<void> {
    let uploader: string;
    try {
      uploader = admitUpload();
    } catch (error) {
      const refusal = toFerryError(error);
      if (refusal.code === "E_SCOPE") refuseUpload(request, response, 403, `E_SCOPE: ${refusal.message}\n`);
      else refuseUpload(request, response, 401, `E_AUTH: uploads need an operator token with the cache:push scope (${refusal.message})\n`, AUTH_CHALLENGE);
      return;
    }
    const narinfo = NARINFO_FILE.exec(relative);
    if (!narinfo && !NAR_FILE.test(relative)) {
      refuseUpload(request, response, 403, `refusing upload to ${JSON.stringify(relative.slice(0, 200))}\n`);
      return;
    }
    const done = this.activity.begin(narinfo ? (narinfo[1] as string) : relative);
    try {
      await this.storeUpload(request, relative, narinfo?.[1], uploader);
    } finally {
      done();
    }
    this.log.debug({ path: relative }, "cache upload stored");
    response.writeHead(201).end();
  }

  private async storeUpload(request: IncomingMessage, relative: string, narinfoHash: string | undefined, uploader: string): Promise<void> {
    if (narinfoHash !== undefined) {
      const text = await readBounded(request, MAX_NARINFO_BYTES);
      const info = parseNarInfo(text);
      if (parseStorePath(info.storePath).hash !== narinfoHash) {
        throw new FerryError("E_BAD_ARGUMENT", `narinfo for ${info.storePath} uploaded as ${relative}`);
      }
      await this.exclusive(() => this.storeNarInfo(relative, text, info));
      this.recordUpload(uploader, info.storePath);
    } else {
      await this.storeFile(relative, request);
    }
  }

  private async storeNarInfo(relative: string, text: string, info: NarInfo): Promise<void> {
    const hash = parseStorePath(info.storePath).hash;
    // From disk: another replica sharing the directory may have added signatures that a merge must keep.
    await this.index.reload(hash);
    const stored = this.index.get(hash)?.toString("utf8");
    if (stored !== undefined) {
      const merged = mergeNarInfoUpload(stored, text);
      if (merged.added.length === 0) return;
      this.log.info({ storePath: info.storePath, added: merged.added.map((sig) => sig.slice(0, sig.indexOf(":"))) }, "signatures added to a cached path");
      const bytes = Buffer.from(merged.text);
      await this.storeFile(relative, bytes);
      this.index.set(hash, bytes);
      return;
    }
    if (!NAR_FILE.test(info.url) || !(await stat(join(this.dir, info.url)).catch(() => undefined))) {
      throw new FerryError("E_BAD_ARGUMENT", `narinfo for ${info.storePath} names NAR ${info.url}, which was not uploaded`);
    }
    const bytes = Buffer.from(text);
    await this.storeFile(relative, bytes);
    this.index.set(hash, bytes);
  }

  /**
   * Moves files staged in `sourceDir` (same filesystem) into the cache, NARs
   * before the narinfos that point at them, makes the renames durable and
   * serves the narinfos from then on. `names` are cache-relative
   * (`nar/….nar.zst`, `….narinfo`); a narinfo already present is replaced.
   * Bundle publishing goes through here so the index never misses a path.
   */
  async publishStaged(sourceDir: string, names: Iterable<string>): Promise<void> {
    const all = [...names];
    const nars = all.filter((name) => NAR_FILE.test(name));
    const narinfos = all.filter((name) => NARINFO_FILE.test(name));
    const other = all.find((name) => !NAR_FILE.test(name) && !NARINFO_FILE.test(name));
    if (other !== undefined) throw new FerryError("E_BAD_ARGUMENT", `not a cache file name: ${JSON.stringify(other.slice(0, 200))}`);
    await this.exclusive(async () => {
      for (const name of nars) await rename(join(sourceDir, name), join(this.dir, name));
      if (nars.length > 0) await syncDirectory(join(this.dir, "nar"));
      const texts = new Map<string, Buffer>();
      for (const name of narinfos) texts.set(name, await readFile(join(sourceDir, name)));
      for (const name of narinfos) await rename(join(sourceDir, name), join(this.dir, name));
      if (narinfos.length > 0) await syncDirectory(this.dir);
      for (const [name, text] of texts) this.index.set(NARINFO_FILE.exec(name)?.[1] as string, text);
    });
  }

  private async storeFile(relative: string, source: IncomingMessage | Buffer): Promise<void> {
    const target = join(this.dir, relative);
    const temp = join(this.dir, `${UPLOAD_TEMP_PREFIX}${randomBytes(8).toString("hex")}`);
    try {
      await writeStreamToFile(source, temp);
      await rename(temp, target);
      await syncDirectory(join(target, ".."));
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      throw error;
    }
  }

  /**
   * Runs `work` under the write lock with what garbage collection needs. A
   * narinfo upload waits meanwhile, and is checked against the NARs present
   * when it runs: one whose NAR was collected is refused, never stored.
   *
   * Controllers sharing the directory each hold their own write lock, so a
   * collection also takes the directory's lock file (gc-lock.ts: one
   * collection at a time, E_CACHE_GC_RUNNING for the others) and first reads
   * every narinfo afresh: a path another replica stored must be marked
   * through, and its NAR must not look like an orphan. What that lock cannot
   * cover is another replica's push in flight: its files are younger than
   * the minimum age, which is what keeps them (see README, --cache-dir).
   */
  sweep<T>(work: (sweep: CacheSweep) => Promise<T>): Promise<T> {
    const dir = this.dir;
    const index = this.index;
    const activity = this.activity;
    const sweep = directorySweep(dir, index, activity);
    const collect = (): Promise<T> =>
      this.exclusive(() =>
        withGcLock(dir, async () => {
          await index.resync();
          return work(sweep);
        }),
      );
    // The replicas' lock first, as a deploy takes it: the same order everywhere, so no deadlock.
    return this.collectionGuard ? this.collectionGuard.exclusive(collect) : collect();
  }

  /**
   * Runs `work` while no garbage collection runs: a deploy checks its
   * closures and records them as desired here, so a collection either sees
   * the new roots or ran entirely before the check (which then fails cleanly).
   */
  withoutCollection<T>(work: () => Promise<T>): Promise<T> {
    const guard = this.collectionGuard;
    return guard ? guard.shared(() => this.exclusive(work)) : this.exclusive(work);
  }

  /** Replicas sharing the directory: deploys and collections on all of them exclude each other too (see Coordination). */
  collectionGuard: CollectionGuard | undefined;

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    return this.writes.run(work);
  }

  async narInfo(hash: string): Promise<NarInfo | undefined> {
    assertStoreHash(hash);
    const text = this.index.get(hash) ?? (await this.index.lookup(hash));
    return text === undefined ? undefined : parseNarInfo(text.toString("utf8"));
  }

  /**
   * The closures of `roots` as the cache's narinfo References describe them:
   * each path with its narinfo, or undefined where the cache cannot serve it
   * (no narinfo, or its NAR is gone); such a path's references stay unknown.
   * Each narinfo is read from disk, not memory: in a directory shared by
   * replicas, another one may have added signatures or removed the path, and
   * a deploy must be checked against what agents will be served.
   */
  async closureInfos(roots: Iterable<string>): Promise<Map<string, NarInfo | undefined>> {
    const found = new Map<string, NarInfo | undefined>();
    const queue = [...new Set(roots)].map(assertStorePath);
    const seen = new Set<string>(queue);
    while (queue.length > 0) {
      const path = queue.pop() as string;
      const hash = parseStorePath(path).hash;
      await this.index.reload(hash);
      const info = await this.narInfo(hash);
      const narPresent = info !== undefined && NAR_FILE.test(info.url) && (await stat(join(this.dir, info.url)).catch(() => undefined)) !== undefined;
      if (info !== undefined && !narPresent && NAR_FILE.test(info.url)) await this.index.dropNar(info.url);
      found.set(path, narPresent ? info : undefined);
      for (const reference of narPresent ? info.references : []) {
        if (!seen.has(reference)) {
          seen.add(reference);
          queue.push(reference);
        }
      }
    }
    return found;
  }

  /** Paths of the closure of `storePath` the cache cannot serve; empty when complete. */
  async missingFromClosure(storePath: string): Promise<string[]> {
    const infos = await this.closureInfos([storePath]);
    return [...infos]
      .filter(([, info]) => info === undefined)
      .map(([path]) => path)
      .sort();
  }

  /**
   * Removes the narinfos of `paths`, then each NAR no remaining narinfo names
   * (identical contents under two names share one NAR). Whether a host still
   * needs a path is the caller's to decide.
   */
  async remove(paths: readonly string[]): Promise<{ removed: string[]; absent: string[] }> {
    paths.forEach(assertStorePath);
    return this.exclusive(async () => {
      const removed: string[] = [];
      const absent: string[] = [];
      const nars = new Set<string>();
      for (const path of new Set(paths)) {
        const file = join(this.dir, `${parseStorePath(path).hash}.narinfo`);
        const hash = parseStorePath(path).hash;
        const info = await this.narInfo(hash).catch(() => undefined);
        try {
          await unlink(file);
        } catch {
          absent.push(path);
          continue;
        } finally {
          this.index.delete(hash);
        }
        removed.push(path);
        if (info && NAR_FILE.test(info.url)) nars.add(info.url);
      }
      if (removed.length > 0) await syncDirectory(this.dir);
      if (nars.size > 0) {
        for (const nar of nars) if (this.index.namingNar(nar).length > 0) nars.delete(nar);
        for (const nar of nars) await unlink(join(this.dir, nar)).catch(() => undefined);
      }
      this.log.info({ removed, absent, nars: [...nars] }, "paths removed from the cache");
      return { removed, absent };
    });
  }
}

/** How Node reports a request body cut off by the client: routine, not the cache's failure. */
function clientLeft(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return code === "ECONNRESET" || code === "ERR_STREAM_PREMATURE_CLOSE" || (code === undefined && message === "aborted");
}

async function readBounded(stream: IncomingMessage, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new FerryError("E_BAD_ARGUMENT", `upload larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** Bytes gathered from an upload before one writev: a 64 KiB write per socket chunk cost more CPU than the copy itself. */
const WRITE_BATCH = 1 << 20;

/** Writes the upload in 1 MiB batches, one write in flight while the next batch fills, then syncs. */
async function writeStreamToFile(source: IncomingMessage | Buffer, file: string): Promise<void> {
  const out = await open(file, "wx", 0o644);
  try {
    if (Buffer.isBuffer(source)) await writeFully(out, [source]);
    else {
      let batch: Buffer[] = [];
      let size = 0;
      let writing: Promise<void> = Promise.resolve();
      for await (const chunk of source as AsyncIterable<Buffer>) {
        batch.push(chunk);
        size += chunk.length;
        if (size >= WRITE_BATCH) {
          await writing;
          writing = writeFully(out, batch);
          // Awaited before the next batch; until then a failure must not count as unhandled.
          writing.catch(() => undefined);
          batch = [];
          size = 0;
        }
      }
      await writing;
      // An aborted request ends the iteration without an error: a partial body must not become a NAR.
      if (!(source as IncomingMessage).complete) throw new FerryError("E_BAD_ARGUMENT", "the upload ended before its last byte");
      await writeFully(out, batch);
    }
    await out.sync();
  } finally {
    await out.close();
  }
}
