import type { SignedIntent } from "@ferry/protocol/agent-channel";
import { signedIntentToJson } from "../intent-file.js";
import { writeFully } from "../write-fully.js";
import { createReadStream } from "node:fs";
import { open, readFile, rename, stat, unlink, type FileHandle } from "node:fs/promises";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { FerryError } from "../errors.js";
import { parseNarInfo } from "../narinfo.js";
import { parseStorePath } from "../validate.js";
import { narInfoFingerprint, parseSha256, signText, toNixBase32, type SigningKey } from "./keys.js";
import {
  BUNDLE_FORMAT,
  BUNDLE_MINOR_VERSION,
  BUNDLE_VERSION,
  CACHE_INFO_FILE,
  CACHE_MANIFEST_MARKER_FILE,
  CACHE_MANIFEST_MARKER_TEXT,
  MANIFEST_FILE,
  NIX_CACHE_INFO,
  SIGNATURE_FILE,
  sha256Hex,
  signManifest,
  type BundleManifest,
  type BundlePath,
  type OmittedPath,
} from "./manifest.js";
import { BLOCK, TAR_END, tarHeader, tarPadding } from "./tar.js";

/** The manifest fields both writers (this one and write-streamed.ts) take alike, and where the file goes. */
export interface BundleWriteIdentity {
  hosts: Record<string, string>;
  sequence: number;
  since: BundleManifest["since"];
  /** The site the bundle is for; null for any site (sites with a name refuse it). */
  site?: string | null;
  /** When the bundle stops being accepted; null for never. */
  expiresAt?: Date | null;
  /** Signed deploy intents for the bundle's hosts. */
  intents?: readonly SignedIntent[];
  signingKey: SigningKey;
  output: string;
  now: Date;
  /** Hears how far the writing is, now and then; for a progress bar. */
  onProgress?: BundleProgress;
}

/**
 * `bytes` of `totalBytes` done: the archive's bytes for a bundle made from a
 * file cache, the NAR bytes read from the store (or export) for a streamed
 * one, whose compressed size is known only at its end.
 */
export type BundleProgress = (done: { bytes: number; totalBytes: number }) => void;

export interface WriteBundleOptions extends BundleWriteIdentity {
  /** A file binary cache (as `nix copy --to file://DIR` writes it) holding every path of `paths`. */
  cacheDir: string;
  /** Store paths the bundle carries. */
  paths: readonly string[];
  omitted: readonly OmittedPath[];
  /**
   * A detached cache manifest instead of a bundle: the marker, manifest,
   * signature, nix-cache-info and narinfos, but no NAR (cache-manifest.ts).
   */
  detached?: boolean;
}

interface Prepared {
  entry: BundlePath;
  narinfoText: string;
  narFile: string;
  references: string[];
}

/** Adds our key's signature to a narinfo unless it already carries one by that key. */
function signNarInfo(text: string, key: SigningKey): string {
  const info = parseNarInfo(text);
  if (info.sigs.some((sig) => sig.startsWith(`${key.name}:`))) return text;
  const digest = parseSha256(info.narHash);
  if (!digest) throw new FerryError("E_INTERNAL", `unexpected NarHash ${info.narHash} for ${info.storePath}`);
  const fingerprint = narInfoFingerprint(info.storePath, `sha256:${toNixBase32(digest)}`, info.narSize, info.references);
  return `${text.replace(/\n*$/, "\n")}Sig: ${signText(key, fingerprint)}\n`;
}

async function prepare(cacheDir: string, storePath: string, key: SigningKey): Promise<Prepared> {
  const narinfoFile = `${parseStorePath(storePath).hash}.narinfo`;
  const narinfoText = signNarInfo(await readFile(join(cacheDir, narinfoFile), "utf8"), key);
  const info = parseNarInfo(narinfoText);
  if (info.storePath !== storePath) throw new FerryError("E_INTERNAL", `${narinfoFile} describes ${info.storePath}, not ${storePath}`);
  const narFile = join(cacheDir, info.url);
  const size = (await stat(narFile)).size;
  const fileHash = /^FileHash: (.*)$/m.exec(narinfoText)?.[1];
  const sha256 = (fileHash && parseSha256(fileHash)?.toString("hex")) || (await hashFile(narFile));
  return {
    entry: {
      storePath,
      narHash: info.narHash,
      narSize: info.narSize,
      narinfo: { file: narinfoFile, size: Buffer.byteLength(narinfoText), sha256: sha256Hex(narinfoText) },
      nar: { file: info.url, size, sha256 },
    },
    narinfoText,
    narFile,
    references: info.references,
  };
}

async function hashFile(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** References before the paths that use them, so a reader never meets a narinfo whose references it has not seen. */
export function dependencyOrder<T>(items: readonly T[], pathOf: (item: T) => string, referencesOf: (item: T) => readonly string[]): T[] {
  const byPath = new Map(items.map((item) => [pathOf(item), item]));
  const done = new Set<string>();
  const ordered: T[] = [];
  const visit = (item: T): void => {
    const stack: [T, number][] = [[item, 0]];
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as [T, number];
      const [current, index] = top;
      if (index === 0 && done.has(pathOf(current))) {
        stack.pop();
        continue;
      }
      const next = referencesOf(current)[index];
      if (next === undefined) {
        stack.pop();
        if (!done.has(pathOf(current))) {
          done.add(pathOf(current));
          ordered.push(current);
        }
        continue;
      }
      top[1] = index + 1;
      const child = byPath.get(next);
      if (child && !done.has(next) && child !== current) stack.push([child, 0]);
    }
  };
  for (const item of [...items].sort((a, b) => pathOf(a).localeCompare(pathOf(b)))) visit(item);
  return ordered;
}

const COPY_BUFFER = 4 << 20;

/**
 * Appends tar entries to the output file. Small entries and headers are queued
 * and go out with the next large write; file bodies are copied through two
 * 4 MiB buffers, so reading the next piece overlaps writing the last.
 */
class ArchiveWriter {
  private position = 0;
  private queued: Buffer[] = [];
  private writing: Promise<void> = Promise.resolve();
  private readonly buffers = [Buffer.allocUnsafe(COPY_BUFFER), Buffer.allocUnsafe(COPY_BUFFER)];
  private turn = 0;

  constructor(
    private readonly out: FileHandle,
    private readonly mtime: number,
    private readonly written: (position: number) => void = () => {},
  ) {}

  /** Starts writing what is queued plus `data`; `data` must stay untouched until the next call. */
  private async flush(data?: Buffer): Promise<void> {
    await this.writing;
    const buffers = data ? [...this.queued, data] : this.queued;
    this.queued = [];
    this.position += buffers.reduce((sum, buffer) => sum + buffer.length, 0);
    this.written(this.position);
    this.writing = writeFully(this.out, buffers);
    this.writing.catch(() => undefined);
  }

  add(name: string, data: string | Buffer): void {
    const bytes = typeof data === "string" ? Buffer.from(data) : data;
    this.queued.push(tarHeader(name, bytes.length, this.mtime), bytes, tarPadding(bytes.length));
  }

  /**
   * Streams a file into the archive. Its hash is not recomputed here: every
   * reader checks each file against the manifest, so a file that changed
   * under us makes an unusable bundle, never a wrong one.
   */
  async addFile(name: string, file: string, size: number): Promise<void> {
    this.queued.push(tarHeader(name, size, this.mtime));
    const input = await open(file, "r");
    let copied = 0;
    try {
      for (;;) {
        // The other buffer may still be being written; this one is free.
        const buffer = this.buffers[this.turn % 2] as Buffer;
        const { bytesRead } = await input.read(buffer, 0, buffer.length, null);
        if (bytesRead === 0) break;
        this.turn++;
        copied += bytesRead;
        await this.flush(buffer.subarray(0, bytesRead));
      }
    } finally {
      await input.close();
    }
    if (copied !== size) throw new FerryError("E_INTERNAL", `${file} changed size while the bundle was written`);
    this.queued.push(tarPadding(size));
  }

  async end(): Promise<number> {
    this.queued.push(TAR_END);
    await this.flush();
    await this.writing;
    return this.position;
  }
}

/**
 * Writes a bundle file from a file binary cache: manifest.json, manifest.sig,
 * nix-cache-info, then each path's NAR followed by its narinfo, dependencies
 * first. The file appears under its name only when complete (temp + rename).
 */
export async function writeBundle(options: WriteBundleOptions): Promise<{ manifest: BundleManifest; bytes: number }> {
  const prepared = dependencyOrder(
    await Promise.all(options.paths.map((path) => prepare(options.cacheDir, path, options.signingKey))),
    (item) => item.entry.storePath,
    (item) => item.references,
  );
  const manifest: BundleManifest = {
    format: BUNDLE_FORMAT,
    version: BUNDLE_VERSION,
    minorVersion: BUNDLE_MINOR_VERSION,
    createdAt: options.now.toISOString(),
    sequence: options.sequence,
    hosts: options.hosts,
    nixCacheInfo: { file: CACHE_INFO_FILE, size: Buffer.byteLength(NIX_CACHE_INFO), sha256: sha256Hex(NIX_CACHE_INFO) },
    paths: prepared.map((item) => item.entry),
    omitted: [...options.omitted].sort((a, b) => a.storePath.localeCompare(b.storePath)),
    since: options.since,
    site: options.site ?? null,
    expiresAt: options.expiresAt ? options.expiresAt.toISOString() : null,
    intents: (options.intents ?? []).map(signedIntentToJson),
  };
  const manifestText = `${JSON.stringify(manifest, null, 1)}\n`;
  const temp = `${options.output}.partial`;
  const out = await open(temp, "w", 0o644);
  try {
    const texts = [manifestText, signManifest(Buffer.from(manifestText), [options.signingKey]), NIX_CACHE_INFO];
    if (options.detached) texts.push(CACHE_MANIFEST_MARKER_TEXT);
    const entrySize = (size: number): number => BLOCK + size + ((BLOCK - (size % BLOCK)) % BLOCK);
    const totalBytes =
      texts.reduce((sum, text) => sum + entrySize(Buffer.byteLength(text)), 0) +
      prepared.reduce((sum, item) => sum + entrySize(Buffer.byteLength(item.narinfoText)) + (options.detached ? 0 : entrySize(item.entry.nar.size)), 0) +
      TAR_END.length;
    const report = options.onProgress;
    const archive = new ArchiveWriter(out, Math.floor(options.now.getTime() / 1000), report && ((bytes) => report({ bytes, totalBytes })));
    if (options.detached) archive.add(CACHE_MANIFEST_MARKER_FILE, CACHE_MANIFEST_MARKER_TEXT);
    archive.add(MANIFEST_FILE, manifestText);
    archive.add(SIGNATURE_FILE, texts[1] as string);
    archive.add(CACHE_INFO_FILE, NIX_CACHE_INFO);
    for (const item of prepared) {
      if (!options.detached) await archive.addFile(item.entry.nar.file, item.narFile, item.entry.nar.size);
      archive.add(item.entry.narinfo.file, item.narinfoText);
    }
    const bytes = await archive.end();
    await out.close();
    // No fsync: the name appears only when the file is complete, and a file damaged by a crash fails verification.
    await rename(temp, options.output);
    return { manifest, bytes };
  } catch (error) {
    await out.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw error;
  }
}
