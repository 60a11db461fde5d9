import { FerryError, assertStorePath, parseNarInfo, parseStorePath, type Logger, type NarInfo } from "@ferry/core";
import type { ClosureSource } from "./closure-source.js";

export interface ExternalCacheOptions {
  /** The cache's base URL, as agents list it in their substituters (http or https; user:password@ becomes a Basic header). */
  url: string;
  /** Narinfo requests in flight at once; default 16. */
  concurrency?: number;
  /** Per request, headers and body; default 10 s. */
  timeoutMs?: number;
  log: Logger;
}

const DEFAULT_CONCURRENCY = 16;
const DEFAULT_TIMEOUT_MS = 10_000;
/** As the built-in cache accepts on upload: a real narinfo is under 10 KiB even with thousands of references. */
const MAX_NARINFO_BYTES = 64 * 1024;
/** A closure past this is not a system but a cache answering in circles; a NixOS system has a few thousand paths. */
const MAX_CLOSURE_PATHS = 200_000;
/** Answers Nix itself takes for "not in this cache" (S3 answers 403 for a missing key without list rights). */
const MISSING_STATUS = new Set([403, 404, 410]);

/**
 * Any Nix binary cache over HTTP (nginx, S3, Cachix-style) that the CI pushes
 * to and agents substitute from: the controller holds no closures, and checks
 * a deploy by walking `<url>/<hash>.narinfo` References the way a substituter
 * would. Presence is judged by narinfo alone, as Nix does; the NAR is the
 * cache's to keep. Uses Node's fetch (undici inside): the controller package
 * does not depend on undici itself.
 */
export class ExternalCache implements ClosureSource {
  readonly url: string;
  private readonly headers: Record<string, string>;
  private readonly concurrency: number;
  private readonly timeoutMs: number;

  constructor(private readonly options: ExternalCacheOptions) {
    let parsed: URL;
    try {
      parsed = new URL(options.url);
    } catch {
      throw new FerryError("E_BAD_ARGUMENT", `the cache URL is not a URL: ${JSON.stringify(options.url.slice(0, 200))}`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      throw new FerryError("E_BAD_ARGUMENT", `the cache URL must be http:// or https://, got ${parsed.protocol}`);
    }
    this.headers = {};
    if (parsed.username !== "" || parsed.password !== "") {
      const user = decodeURIComponent(parsed.username);
      const password = decodeURIComponent(parsed.password);
      this.headers.authorization = `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
      parsed.username = "";
      parsed.password = "";
    }
    this.url = parsed.toString().replace(/\/+$/, "");
    this.concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** Nothing of this controller's collects an external cache. */
  withoutCollection<T>(work: () => Promise<T>): Promise<T> {
    return work();
  }

  async closureInfos(roots: Iterable<string>): Promise<Map<string, NarInfo | undefined>> {
    const found = new Map<string, NarInfo | undefined>();
    const queue = [...new Set(roots)].map(assertStorePath);
    const seen = new Set<string>(queue);
    const stop = new AbortController();
    let active = 0;
    await new Promise<void>((resolve, reject) => {
      const fail = (error: unknown): void => {
        stop.abort();
        reject(error);
      };
      const pump = (): void => {
        if (stop.signal.aborted) return;
        if (queue.length === 0 && active === 0) return resolve();
        while (active < this.concurrency && queue.length > 0) {
          const path = queue.pop() as string;
          active++;
          this.narInfo(path, stop.signal).then((info) => {
            active--;
            found.set(path, info);
            for (const reference of info?.references ?? []) {
              if (seen.has(reference)) continue;
              if (seen.size >= MAX_CLOSURE_PATHS)
                return fail(new FerryError("E_CACHE_BAD_NARINFO", `the closure walk from ${this.url} passed ${MAX_CLOSURE_PATHS} paths`));
              seen.add(reference);
              queue.push(reference);
            }
            pump();
          }, fail);
        }
      };
      pump();
    });
    this.options.log.debug({ cache: this.url, paths: found.size }, "closure checked in the external cache");
    return found;
  }

  /** The narinfo of `path`, undefined when the cache says it lacks it. */
  private async narInfo(path: string, stop: AbortSignal): Promise<NarInfo | undefined> {
    const url = `${this.url}/${parseStorePath(path).hash}.narinfo`;
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const signal = AbortSignal.any([timeout, stop]);
    let text: string;
    try {
      const response = await fetch(url, { headers: this.headers, signal, redirect: "follow" });
      if (MISSING_STATUS.has(response.status)) {
        await response.body?.cancel().catch(() => undefined);
        return undefined;
      }
      if (response.status !== 200) {
        await response.body?.cancel().catch(() => undefined);
        throw new FerryError("E_CACHE_UNREACHABLE", `${url} answered HTTP ${response.status}`);
      }
      text = await readBounded(response, url);
    } catch (error) {
      if (error instanceof FerryError) throw error;
      if (stop.aborted) throw new FerryError("E_CACHE_UNREACHABLE", `the closure walk stopped`, { cause: error });
      const why = timeout.aborted ? `no answer within ${this.timeoutMs} ms` : describe(error);
      throw new FerryError("E_CACHE_UNREACHABLE", `cannot read ${url}: ${why}`, { cause: error });
    }
    let info: NarInfo;
    try {
      info = parseNarInfo(text);
    } catch (error) {
      throw new FerryError("E_CACHE_BAD_NARINFO", `${url} is not a narinfo: ${(error as Error).message}`, { cause: error });
    }
    if (info.storePath !== path) throw new FerryError("E_CACHE_BAD_NARINFO", `${url} describes ${info.storePath}, not ${path}`);
    return info;
  }
}

/** The body, refused past MAX_NARINFO_BYTES without reading further. */
async function readBounded(response: Response, url: string): Promise<string> {
  const tooLarge = (): FerryError => new FerryError("E_CACHE_BAD_NARINFO", `${url} is larger than ${MAX_NARINFO_BYTES} bytes`);
  const declared = Number(response.headers.get("content-length") ?? "0");
  if (declared > MAX_NARINFO_BYTES) {
    await response.body?.cancel().catch(() => undefined);
    throw tooLarge();
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = response.body?.getReader();
  if (!reader) return "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > MAX_NARINFO_BYTES) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** fetch says "fetch failed" and keeps the reason in `cause`. */
function describe(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
  if (cause && typeof cause.message === "string") return typeof cause.code === "string" ? `${cause.code} ${cause.message}` : cause.message;
  return error instanceof Error ? error.message : String(error);
}
