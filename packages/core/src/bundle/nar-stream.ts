import { createHash } from "node:crypto";
import { FerryError } from "../errors.js";
import type { StreamingRunner } from "../runner.js";
import { assertStorePath } from "../validate.js";

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
 * Streams one store path as a zstd-compressed NAR: `nix-store --dump PATH`
 * piped through `zstd`, each hashed as it goes, the compressed bytes handed
 * to `sink` in order. Nothing touches the disk here, and at most a few pipe
 * buffers are in memory.
 */
export async function streamCompressedNar(runner: StreamingRunner, storePath: string, sink: (chunk: Buffer) => Promise<void>): Promise<StreamedNar> {
  assertStorePath(storePath);
  const dump = runner.stream({ argv: ["nix-store", "--dump", storePath], timeoutMs: PATH_TIMEOUT_MS });
  const zstd = runner.stream({ argv: ZSTD_ARGV, purpose: "compress", timeoutMs: PATH_TIMEOUT_MS });
  const narHash = createHash("sha256");
  const fileHash = createHash("sha256");
  let narSize = 0;
  let fileSize = 0;
  const feed = (async () => {
    for await (const chunk of dump.stdout) {
      narHash.update(chunk);
      narSize += chunk.length;
      if (!zstd.stdin.write(chunk)) await new Promise<void>((resolve) => zstd.stdin.once("drain", resolve));
    }
    zstd.stdin.end();
  })();
  const drain = (async () => {
    for await (const chunk of zstd.stdout) {
      fileHash.update(chunk);
      fileSize += chunk.length;
      await sink(chunk);
    }
  })();
  try {
    await Promise.all([feed, drain, dump.done, zstd.done]);
  } catch (error) {
    dump.kill();
    zstd.kill();
    await Promise.allSettled([feed, drain, dump.done, zstd.done]);
    throw error instanceof FerryError ? error : new FerryError("E_COMMAND_FAILED", `streaming ${storePath}: ${(error as Error).message}`);
  }
  return { narSha256: narHash.digest(), narSize, fileSha256: fileHash.digest(), fileSize };
}
