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
 * Streams one store path as a zstd-compressed NAR: the NAR (dumpNar) piped
 * through `zstd` (through the runner), each hashed as it goes, the compressed bytes handed
 * to `sink` in order. Nothing touches the disk here, and at most a few pipe
 * buffers are in memory.
 */
/**
 * Streams one store path's NAR uncompressed: for NARs too small for a zstd
 * process to pay for its start (about 7 ms from Node, most of it the fork).
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
