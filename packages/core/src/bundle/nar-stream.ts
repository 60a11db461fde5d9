import { createHash } from "node:crypto";
import { FerryError } from "../errors.js";
import type { StreamingRunner } from "../runner.js";
import { assertStorePath } from "../validate.js";
import { dumpNar } from "./nar-dump.js";

/** What streaming one path produced: the NAR's hash and size (as Nix computes them) and the compressed file's. */
export interface StreamedNar {
  narSha256: Buffer;
  narSize: number;
  fileSha256: Buffer;
  fileSize: number;
}

/** zstd level 3 (its default) on every core: fast enough to keep up with the disk, and about half the size of real binaries. */
const ZSTD_ARGV = ["zstd", "-q", "-c", "-3", "-T0"];
const PATH_TIMEOUT_MS = 3_600_000;

/**
 * Streams one store path's NAR uncompressed: for NARs too small for a zstd
 * process to pay for its start (about 7 ms from Node, most of it the fork),
 * and for NARs whose bytes would not shrink.
 */
export async function streamPlainNar(
  storePath: string,
  sink: (chunk: Buffer) => Promise<void>,
  source: (storePath: string) => AsyncIterable<Buffer> = dumpNar,
): Promise<StreamedNar> {
  assertStorePath(storePath);
  const hash = createHash("sha256");
  let size = 0;
  try {
    for await (const chunk of source(storePath)) {
      hash.update(chunk);
      size += chunk.length;
      await sink(chunk);
    }
  } catch (error) {
    throw error instanceof FerryError ? error : new FerryError("E_COMMAND_FAILED", `streaming ${storePath}: ${(error as Error).message}`);
  }
  const digest = hash.digest();
  return { narSha256: digest, narSize: size, fileSha256: digest, fileSize: size };
}

/**
 * Streams one store path as a zstd-compressed NAR: the NAR (dumpNar) piped
 * through `zstd` (through the runner), each hashed as it goes, the compressed bytes handed
 * to `sink` in order. Nothing touches the disk here, and at most a few pipe
 * buffers are in memory.
 */
export async function streamCompressedNar(
  runner: StreamingRunner,
  storePath: string,
  sink: (chunk: Buffer) => Promise<void>,
  source: (storePath: string) => AsyncIterable<Buffer> = dumpNar,
): Promise<StreamedNar> {
  assertStorePath(storePath);
  const dump = source(storePath);
  const zstd = runner.stream({ argv: ZSTD_ARGV, purpose: "compress", timeoutMs: PATH_TIMEOUT_MS });
  const narHash = createHash("sha256");
  const fileHash = createHash("sha256");
  let narSize = 0;
  let fileSize = 0;
  const feed = (async () => {
    try {
      for await (const chunk of dump) {
        narHash.update(chunk);
        narSize += chunk.length;
        if (!zstd.stdin.write(chunk))
          await new Promise<void>((resolve) => {
            // A zstd that died never drains; its stdin closes instead.
            zstd.stdin.once("drain", resolve);
            zstd.stdin.once("close", resolve);
          });
      }
    } finally {
      // Also on a failed read: zstd then ends, and so does everything waiting on it.
      zstd.stdin.end();
    }
  })();
  const drain = (async () => {
    for await (const chunk of zstd.stdout) {
      fileHash.update(chunk);
      fileSize += chunk.length;
      await sink(chunk);
    }
  })();
  try {
    await Promise.all([feed, drain, zstd.done]);
  } catch (error) {
    zstd.kill();
    await Promise.allSettled([feed, drain, zstd.done]);
    throw error instanceof FerryError ? error : new FerryError("E_COMMAND_FAILED", `streaming ${storePath}: ${(error as Error).message}`);
  }
  return { narSha256: narHash.digest(), narSize, fileSha256: fileHash.digest(), fileSize };
}

/** NARs below this size go in uncompressed (`.nar`): a zstd process per path costs more than it saves. */
export const COMPRESS_MIN_NAR_SIZE = 64 * 1024;
/** How much of a NAR's start decides whether it is compressed. */
const SAMPLE_BYTES = 128 * 1024;
/**
 * Above this order-0 entropy (bits per byte) the sample is taken for data
 * zstd cannot shrink by more than a few per cent: random or already compressed
 * bytes measure 7.99, executables and libraries 5.5–6.5, text below 5.
 */
export const INCOMPRESSIBLE_ENTROPY = 7.5;

/** Shannon entropy of the bytes' distribution, in bits per byte: a cheap (about 2.5 ms per MiB) proxy for what a compressor could save. */
export function byteEntropy(chunks: readonly Buffer[], limit = Number.POSITIVE_INFINITY): number {
  const counts = new Float64Array(256);
  let total = 0;
  for (const chunk of chunks) {
    const end = Math.min(chunk.length, limit - total);
    for (let i = 0; i < end; i++) {
      const byte = chunk[i] as number;
      counts[byte] = (counts[byte] as number) + 1;
    }
    total += end;
    if (total >= limit) break;
  }
  let bits = 0;
  for (const count of counts) if (count > 0) bits -= (count / total) * Math.log2(count / total);
  return bits;
}

/**
 * Streams one store path's NAR, compressed or not as pays: small NARs and
 * NARs whose first 128 KiB look incompressible (byteEntropy) go in as they
 * are (`Compression: none`, which every Nix reads), the rest through zstd.
 * Skipping zstd where it cannot help saves its process start, two pipe copies
 * and its CPU, and on such data the file is no larger.
 */
export async function streamNar(
  runner: StreamingRunner,
  info: { path: string; narSize: number },
  sink: (chunk: Buffer) => Promise<void>,
  source: (storePath: string) => AsyncIterable<Buffer> = dumpNar,
): Promise<StreamedNar & { compressed: boolean }> {
  if (info.narSize < COMPRESS_MIN_NAR_SIZE) return { ...(await streamPlainNar(info.path, sink, source)), compressed: false };
  const iterator = source(info.path)[Symbol.asyncIterator]();
  const sample: Buffer[] = [];
  let sampled = 0;
  try {
    while (sampled < SAMPLE_BYTES) {
      const next = await iterator.next();
      if (next.done) break;
      sample.push(next.value);
      sampled += next.value.length;
    }
  } catch (error) {
    throw error instanceof FerryError ? error : new FerryError("E_COMMAND_FAILED", `streaming ${info.path}: ${(error as Error).message}`);
  }
  async function* replay(): AsyncGenerator<Buffer> {
    yield* sample;
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
  }
  const compressed = byteEntropy(sample, SAMPLE_BYTES) < INCOMPRESSIBLE_ENTROPY;
  const streamed = compressed ? await streamCompressedNar(runner, info.path, sink, replay) : await streamPlainNar(info.path, sink, replay);
  return { ...streamed, compressed };
}
