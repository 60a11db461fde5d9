import { signedIntentToJson } from "../intent-file.js";
import { open, rename, unlink, type FileHandle } from "node:fs/promises";
import { FerryError } from "../errors.js";
import type { StreamingRunner } from "../runner.js";
import { parseStorePath } from "../validate.js";
import { narInfoFingerprint, parseSha256, signText, toNixBase32, type SigningKey } from "./keys.js";
import {
  BUNDLE_FORMAT,
  BUNDLE_MINOR_VERSION,
  BUNDLE_VERSION_STREAMED,
  CACHE_INFO_FILE,
  HEAD_FILE,
  HEAD_FORMAT,
  HEAD_SIGNATURE_FILE,
  MANIFEST_FILE,
  NIX_CACHE_INFO,
  SIGNATURE_FILE,
  STREAMED_MARKER_FILE,
  STREAMED_MARKER_TEXT,
  sha256Hex,
  signManifest,
  type BundleHead,
  type BundleManifest,
  type BundlePath,
  type OmittedPath,
} from "./manifest.js";
import { dumpNar } from "./nar-dump.js";
import { streamNar, type StreamedNar } from "./nar-stream.js";
import { BLOCK, TAR_END, tarHeader, tarPadding } from "./tar.js";
import { dependencyOrder, type BundleWriteIdentity } from "./write.js";

/** A path as the local store describes it (nix path-info). */
export interface StorePathInfo {
  path: string;
  /** Null when nothing recorded one (an export): the hash of the bytes streamed is taken. */
  narHash: string | null;
  narSize: number;
  references: string[];
}

export interface WriteStreamedOptions extends BundleWriteIdentity {
  runner: StreamingRunner;
  /** The NAR of a store path; tests stand in for the store. Default: dumpNar. */
  narSource?: (storePath: string) => AsyncIterable<Buffer>;
  /** The paths the bundle carries, as the store describes them. */
  paths: readonly StorePathInfo[];
  omitted: readonly OmittedPath[];
}

const WRITE_BATCH = 4 << 20;
/**
 * Paths streamed at once: the archive takes them in order, but the next ones
 * start their `nix-store --dump | zstd` meanwhile (hiding process start-up and
 * using every core), each buffering at most SPOOL_LIMIT bytes until its turn.
 */
const LOOKAHEAD = 4;
const SPOOL_LIMIT = 16 << 20;

/** One path's compressed bytes on their way to the archive: filled by its stream, drained in archive order. */
class Spool {
  private chunks: Buffer[] = [];
  private bytes = 0;
  private finished = false;
  private wakeReader: (() => void) | undefined;
  private wakeWriter: (() => void) | undefined;
  private cancelled = false;

  async push(chunk: Buffer): Promise<void> {
    if (this.cancelled) throw new FerryError("E_INTERNAL", "bundle writing stopped");
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    this.wakeReader?.();
    while (this.bytes > SPOOL_LIMIT) await new Promise<void>((resolve) => (this.wakeWriter = resolve));
  }

  /** The archive stopped: the stream's next push throws, which ends its commands. */
  cancel(): void {
    this.cancelled = true;
    this.chunks = [];
    this.bytes = 0;
    this.wakeWriter?.();
  }

  finish(): void {
    this.finished = true;
    this.wakeReader?.();
  }

  async *drain(): AsyncGenerator<Buffer> {
    for (;;) {
      const chunk = this.chunks.shift();
      if (chunk) {
        this.bytes -= chunk.length;
        if (this.bytes <= SPOOL_LIMIT) this.wakeWriter?.();
        yield chunk;
        continue;
      }
      if (this.finished) return;
      await new Promise<void>((resolve) => (this.wakeReader = resolve));
    }
  }
}

/**
 * Appends to the output at known offsets, so that a NAR entry's tar header,
 * whose name and size are known only once the NAR is written, can be filled
 * in afterwards. Bytes are gathered into 4 MiB writes; one write runs while
 * the next batch fills.
 */
class PositionedWriter {
  position = 0;
  private batch: Buffer[] = [];
  private batchBytes = 0;
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly out: FileHandle) {}

  async append(data: Buffer): Promise<void> {
    this.batch.push(data);
    this.batchBytes += data.length;
    this.position += data.length;
    if (this.batchBytes >= WRITE_BATCH) await this.flush();
  }

  /** Leaves `size` bytes to be written later with `fill`. */
  async reserve(size: number): Promise<number> {
    await this.flush();
    const at = this.position;
    this.position += size;
    return at;
  }

  async fill(at: number, data: Buffer): Promise<void> {
    await this.writing;
    await this.out.write(data, 0, data.length, at);
  }

  async flush(): Promise<void> {
    await this.writing;
    const buffers = this.batch;
    const at = this.position - this.batchBytes;
    this.batch = [];
    this.batchBytes = 0;
    this.writing = buffers.length === 0 ? Promise.resolve() : writeAt(this.out, buffers, at);
    this.writing.catch(() => undefined);
  }

  async end(): Promise<void> {
    await this.flush();
    await this.writing;
  }
}

async function writeAt(out: FileHandle, buffers: Buffer[], at: number): Promise<void> {
  let position = at;
  for (const buffer of buffers.length > 64 ? [Buffer.concat(buffers)] : buffers) {
    let done = 0;
    while (done < buffer.length) {
      const { bytesWritten } = await out.write(buffer, done, buffer.length - done, position);
      done += bytesWritten;
      position += bytesWritten;
    }
  }
}

function narinfoText(info: StorePathInfo, file: string, compressed: boolean, fileSha256: Buffer, fileSize: number, narSha256: Buffer, key: SigningKey): string {
  const narHash = `sha256:${toNixBase32(narSha256)}`;
  const references = [...info.references].sort();
  const fingerprint = narInfoFingerprint(info.path, narHash, info.narSize, references);
  return [
    `StorePath: ${info.path}`,
    `URL: ${file}`,
    `Compression: ${compressed ? "zstd" : "none"}`,
    `FileHash: sha256:${toNixBase32(fileSha256)}`,
    `FileSize: ${fileSize}`,
    `NarHash: ${narHash}`,
    `NarSize: ${info.narSize}`,
    `References: ${references.map((ref) => ref.slice("/nix/store/".length)).join(" ")}`,
    `Sig: ${signText(key, fingerprint)}`,
    "",
  ].join("\n");
}

/**
 * Writes a version 2 bundle in one pass from the store: a marker entry, the
 * signed head (sequence and paths), nix-cache-info, then for each path (dependencies first) its NAR, streamed
 * from `nix-store --dump` through zstd and hashed on the way, and its signed
 * narinfo; the manifest and its signature come last, once every hash is
 * known. No scratch copy: each byte is written once. The NAR hash Nix
 * recorded is checked against the dump, so a damaged store path fails here.
 */
export async function writeStreamedBundle(options: WriteStreamedOptions): Promise<{ manifest: BundleManifest; bytes: number }> {
  const ordered = dependencyOrder(
    options.paths,
    (info) => info.path,
    (info) => info.references,
  );
  const mtime = Math.floor(options.now.getTime() / 1000);
  const temp = `${options.output}.partial`;
  const out = await open(temp, "w", 0o644);
  let spools: Spool[] = [];
  let running: Promise<StreamedNar & { compressed: boolean }>[] = [];
  try {
    const writer = new PositionedWriter(out);
    const addSmall = async (name: string, text: string): Promise<void> => {
      const bytes = Buffer.from(text);
      await writer.append(Buffer.concat([tarHeader(name, bytes.length, mtime), bytes, tarPadding(bytes.length)]));
    };
    await addSmall(STREAMED_MARKER_FILE, STREAMED_MARKER_TEXT);
    const head: BundleHead = {
      format: HEAD_FORMAT,
      version: BUNDLE_VERSION_STREAMED,
      sequence: options.sequence,
      paths: ordered.map((info) => ({ storePath: info.path, narSize: info.narSize })),
    };
    const headText = `${JSON.stringify(head)}\n`;
    await addSmall(HEAD_FILE, headText);
    await addSmall(HEAD_SIGNATURE_FILE, signManifest(Buffer.from(headText), [options.signingKey], "head"));
    await addSmall(CACHE_INFO_FILE, NIX_CACHE_INFO);
    const entries: BundlePath[] = [];
    const totalBytes = ordered.reduce((sum, info) => sum + info.narSize, 0);
    let narBytes = 0;
    const source = options.narSource ?? dumpNar;
    const report = options.onProgress;
    const narSource = report
      ? async function* (storePath: string): AsyncGenerator<Buffer> {
          for await (const chunk of source(storePath)) {
            narBytes += chunk.length;
            report({ bytes: narBytes, totalBytes });
            yield chunk;
          }
        }
      : source;
    // Started LOOKAHEAD paths ahead of the one being written; each settles with its hashes.
    spools = ordered.map(() => new Spool());
    const streams: Promise<StreamedNar & { compressed: boolean }>[] = [];
    running = streams;
    const start = (index: number): void => {
      const info = ordered[index];
      if (!info || streams[index]) return;
      const spool = spools[index] as Spool;
      const sink = (chunk: Buffer): Promise<void> => spool.push(chunk);
      const streamed = streamNar(options.runner, info, sink, narSource).finally(() => spool.finish());
      streamed.catch(() => undefined);
      streams[index] = streamed;
    };
    for (const [index, info] of ordered.entries()) {
      for (let ahead = index; ahead < index + LOOKAHEAD; ahead++) start(ahead);
      const headerAt = await writer.reserve(BLOCK);
      for await (const chunk of (spools[index] as Spool).drain()) await writer.append(chunk);
      const nar = await (streams[index] as Promise<StreamedNar & { compressed: boolean }>);
      const expected = info.narHash === null ? nar.narSha256 : parseSha256(info.narHash);
      if (!expected?.equals(nar.narSha256) || nar.narSize !== info.narSize) {
        throw new FerryError(
          "E_STORE_PATH_CORRUPT",
          `${info.path} in the local store does not match its recorded NAR hash or size; repair it (nix-store --verify --check-contents --repair)`,
        );
      }
      const compressed = nar.compressed;
      const file = `nar/${toNixBase32(nar.fileSha256)}${compressed ? ".nar.zst" : ".nar"}`;
      await writer.append(tarPadding(nar.fileSize));
      await writer.fill(headerAt, tarHeader(file, nar.fileSize, mtime));
      const text = narinfoText(info, file, compressed, nar.fileSha256, nar.fileSize, nar.narSha256, options.signingKey);
      const narinfoFile = `${parseStorePath(info.path).hash}.narinfo`;
      await addSmall(narinfoFile, text);
      entries.push({
        storePath: info.path,
        narHash: `sha256:${toNixBase32(nar.narSha256)}`,
        narSize: info.narSize,
        narinfo: { file: narinfoFile, size: Buffer.byteLength(text), sha256: sha256Hex(text) },
        nar: { file, size: nar.fileSize, sha256: nar.fileSha256.toString("hex") },
      });
    }
    const manifest: BundleManifest = {
      format: BUNDLE_FORMAT,
      version: BUNDLE_VERSION_STREAMED,
      minorVersion: BUNDLE_MINOR_VERSION,
      createdAt: options.now.toISOString(),
      sequence: options.sequence,
      hosts: options.hosts,
      nixCacheInfo: { file: CACHE_INFO_FILE, size: Buffer.byteLength(NIX_CACHE_INFO), sha256: sha256Hex(NIX_CACHE_INFO) },
      paths: entries,
      omitted: [...options.omitted].sort((a, b) => a.storePath.localeCompare(b.storePath)),
      since: options.since,
      site: options.site ?? null,
      expiresAt: options.expiresAt ? options.expiresAt.toISOString() : null,
      intents: (options.intents ?? []).map(signedIntentToJson),
    };
    const manifestText = `${JSON.stringify(manifest, null, 1)}\n`;
    await addSmall(MANIFEST_FILE, manifestText);
    await addSmall(SIGNATURE_FILE, signManifest(Buffer.from(manifestText), [options.signingKey]));
    await writer.append(TAR_END);
    await writer.end();
    await out.close();
    // No fsync: the name appears only when the file is complete, and a file damaged by a crash fails verification.
    await rename(temp, options.output);
    return { manifest, bytes: writer.position };
  } catch (error) {
    for (const spool of spools) spool.cancel();
    await Promise.allSettled(running);
    await out.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw error;
  }
}
