import { createReadStream, createWriteStream, mkdirSync, readdirSync, rmSync } from "node:fs";
import { readFile, readdir, rename, stat, unlink } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { refuseUpload } from "../edge/refuse-upload.js";
import {
  FerryError,
  toFerryError,
  assertStoreHash,
  assertStorePath,
  parseNarInfo,
  parseStorePath,
  fsyncDirectory,
  type Logger,
  type NarInfo,
} from "@ferry/core";
import { mergeNarInfoUpload } from "./narinfo-merge.js";

const NIX_CACHE_INFO = "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n";
const NARINFO_FILE = /^([0-9a-z]{32})\.narinfo$/;
const NAR_FILE = /^nar\/[0-9a-z]{52}\.nar(?:\.(?:xz|zst|bz2|br|lzip|lz4|gz))?$/;
const MAX_NARINFO_BYTES = 64 * 1024;
/** Temp files of uploads in flight; ones left by a crash are removed at start. */
const UPLOAD_TEMP_PREFIX = ".upload-";
/** HTTP status of a refused cache request, by error code; other refusals are 400, bugs 500. */
const CACHE_STATUS: Partial<Record<string, number>> = { E_CACHE_CONFLICT: 409, E_NO_SPACE: 507 };
const AUTH_CHALLENGE = { "www-authenticate": 'Basic realm="ferry-cache"' };

/** Admits an upload: returns the uploading token's name, or throws E_AUTH (no valid token) or E_SCOPE. */
export type UploadAdmission = () => string;
/** Told of each narinfo an upload stored, with the uploading token's name (the audit trail). */
export type UploadRecorder = (uploader: string, storePath: string) => void;

/**
 * A standard Nix HTTP binary cache over a directory: what `nix copy --to`
 * uploads with PUT, agents substitute from with GET. Files appear atomically
 * (temp file + rename), and a narinfo is only accepted once its NAR is there,
 * so a reader never sees a narinfo that points at a missing or partial NAR.
 * A narinfo uploaded again for the same contents adds its signatures; for
 * other contents it is refused (E_CACHE_CONFLICT).
 */
export class BinaryCache {
  /** Narinfo writes and removals, one at a time: each reads what the one before wrote. */
  private writes: Promise<unknown> = Promise.resolve();

  constructor(
    readonly dir: string,
    private readonly recordUpload: UploadRecorder,
    private readonly log: Logger,
  ) {
    mkdirSync(join(dir, "nar"), { recursive: true });
    // No upload is in flight before the controller listens: any temp file is a crash's leftover.
    for (const name of readdirSync(dir)) if (name.startsWith(UPLOAD_TEMP_PREFIX)) rmSync(join(dir, name), { force: true });
  }

  /** Serves a request whose path starts with the cache prefix; `relative` has no leading slash. */
  async handle(request: IncomingMessage, response: ServerResponse, relative: string, admitUpload: UploadAdmission): Promise<void> {
    try {
      if (request.method === "GET" || request.method === "HEAD") return await this.serve(request, response, relative);
      if (request.method === "PUT") return await this.upload(request, response, relative, admitUpload);
      response.writeHead(405, { allow: "GET, HEAD, PUT" }).end();
    } catch (error) {
      const ferry = toFerryError(error);
      this.log.warn({ err: ferry.message, code: ferry.code, path: relative, method: request.method }, "cache request failed");
      const status = CACHE_STATUS[ferry.code] ?? (ferry.code === "E_INTERNAL" ? 500 : 400);
      if (!response.headersSent) response.writeHead(status, { "content-type": "text/plain" });
      response.end(`${ferry.code}: ${ferry.message}\n`);
    }
  }

  private async serve(request: IncomingMessage, response: ServerResponse, relative: string): Promise<void> {
    if (relative === "nix-cache-info") {
      response.writeHead(200, { "content-type": "text/x-nix-cache-info", "content-length": NIX_CACHE_INFO.length });
      response.end(request.method === "HEAD" ? undefined : NIX_CACHE_INFO);
      return;
    }
    if (!NARINFO_FILE.test(relative) && !NAR_FILE.test(relative)) {
      response.writeHead(404).end();
      return;
    }
    const file = join(this.dir, relative);
    const info = await stat(file).catch(() => undefined);
    if (!info?.isFile()) {
      response.writeHead(404).end();
      return;
    }
    const type = relative.endsWith(".narinfo") ? "text/x-nix-narinfo" : "application/x-nix-nar";
    response.writeHead(200, { "content-type": type, "content-length": info.size });
    if (request.method === "HEAD") {
      response.end();
      return;
    }
    await pipeline(createReadStream(file), response);
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
    if (narinfo) {
      const text = await readBounded(request, MAX_NARINFO_BYTES);
      const info = parseNarInfo(text);
      if (parseStorePath(info.storePath).hash !== narinfo[1]) {
        throw new FerryError("E_BAD_ARGUMENT", `narinfo for ${info.storePath} uploaded as ${relative}`);
      }
      await this.exclusive(() => this.storeNarInfo(relative, text, info));
      this.recordUpload(uploader, info.storePath);
    } else {
      await this.storeFile(relative, request);
    }
    this.log.debug({ path: relative }, "cache upload stored");
    response.writeHead(201).end();
  }

  private async storeNarInfo(relative: string, text: string, info: NarInfo): Promise<void> {
    const stored = await readFile(join(this.dir, relative), "utf8").catch(() => undefined);
    if (stored !== undefined) {
      const merged = mergeNarInfoUpload(stored, text);
      if (merged.added.length === 0) return;
      this.log.info({ storePath: info.storePath, added: merged.added.map((sig) => sig.slice(0, sig.indexOf(":"))) }, "signatures added to a cached path");
      await this.storeFile(relative, Buffer.from(merged.text));
      return;
    }
    if (!NAR_FILE.test(info.url) || !(await stat(join(this.dir, info.url)).catch(() => undefined))) {
      throw new FerryError("E_BAD_ARGUMENT", `narinfo for ${info.storePath} names NAR ${info.url}, which was not uploaded`);
    }
    await this.storeFile(relative, Buffer.from(text));
  }

  private async storeFile(relative: string, source: NodeJS.ReadableStream | Buffer): Promise<void> {
    const target = join(this.dir, relative);
    const temp = join(this.dir, `${UPLOAD_TEMP_PREFIX}${randomBytes(8).toString("hex")}`);
    try {
      await writeStreamToFile(source, temp);
      await rename(temp, target);
      fsyncDirectory(join(target, ".."));
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      throw error;
    }
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.writes.then(work, work);
    this.writes = run.catch(() => undefined);
    return run;
  }

  async narInfo(hash: string): Promise<NarInfo | undefined> {
    assertStoreHash(hash);
    const text = await readFile(join(this.dir, `${hash}.narinfo`), "utf8").catch(() => undefined);
    return text === undefined ? undefined : parseNarInfo(text);
  }

  /**
   * The closures of `roots` as the cache's narinfo References describe them:
   * each path with its narinfo, or undefined where the cache cannot serve it
   * (no narinfo, or its NAR is gone); such a path's references stay unknown.
   */
  async closureInfos(roots: Iterable<string>): Promise<Map<string, NarInfo | undefined>> {
    const found = new Map<string, NarInfo | undefined>();
    const queue = [...new Set(roots)].map(assertStorePath);
    const seen = new Set<string>(queue);
    while (queue.length > 0) {
      const path = queue.pop() as string;
      const info = await this.narInfo(parseStorePath(path).hash);
      const narPresent = info !== undefined && NAR_FILE.test(info.url) && (await stat(join(this.dir, info.url)).catch(() => undefined)) !== undefined;
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
        const info = await this.narInfo(parseStorePath(path).hash).catch(() => undefined);
        try {
          await unlink(file);
        } catch {
          absent.push(path);
          continue;
        }
        removed.push(path);
        if (info && NAR_FILE.test(info.url)) nars.add(info.url);
      }
      if (removed.length > 0) fsyncDirectory(this.dir);
      if (nars.size > 0) {
        for (const name of await readdir(this.dir)) {
          if (!NARINFO_FILE.test(name)) continue;
          const text = await readFile(join(this.dir, name), "utf8").catch(() => "");
          for (const nar of nars) if (text.includes(`URL: ${nar}\n`)) nars.delete(nar);
        }
        for (const nar of nars) await unlink(join(this.dir, nar)).catch(() => undefined);
      }
      this.log.info({ removed, absent, nars: [...nars] }, "paths removed from the cache");
      return { removed, absent };
    });
  }
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

async function writeStreamToFile(source: NodeJS.ReadableStream | Buffer, file: string): Promise<void> {
  const out = createWriteStream(file, { mode: 0o644, flush: true });
  if (Buffer.isBuffer(source)) {
    await new Promise<void>((resolve, reject) => out.end(source, () => resolve()).on("error", reject));
    return;
  }
  await pipeline(source, out);
}
