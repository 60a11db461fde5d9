import { open, type FileHandle } from "node:fs/promises";
import type { ServerResponse } from "node:http";

/**
 * Bytes per read. Node has no sendfile, so every byte is copied through user
 * space; large reads amortise the per-chunk cost (a thread-pool hop, a write
 * syscall). Chosen by test/bench/cache.bench.ts on loopback: 64 KiB reads
 * reached about half of what 1 MiB reads did, larger ones add nothing.
 */
export const SEND_CHUNK_BYTES = 1024 * 1024;

export interface SendResult {
  /** False when the client went away before the last byte. */
  complete: boolean;
}

/**
 * Opens `file` and answers with it: 404 when it is not a regular file, else
 * 200 with its length and, unless `headOnly`, its bytes. The next chunk is read
 * while the current one is written, so disk (or page cache) reads in the
 * thread pool overlap the socket writes on the main thread.
 */
export async function sendFile(
  file: string,
  response: ServerResponse,
  contentType: string,
  headOnly: boolean,
  chunkBytes = SEND_CHUNK_BYTES,
): Promise<SendResult | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(file, "r");
  } catch {
    return undefined;
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) return undefined;
    response.writeHead(200, { "content-type": contentType, "content-length": info.size });
    if (headOnly) {
      response.end();
      return { complete: true };
    }
    let closed = false;
    const onClose = (): void => {
      closed = true;
    };
    response.once("close", onClose);
    try {
      let position = 0;
      let next = position < info.size ? readChunk(handle, position, Math.min(chunkBytes, info.size)) : undefined;
      while (next) {
        const chunk = await next;
        if (chunk.length === 0) break; // the file shrank under us; the length already sent cannot be kept
        position += chunk.length;
        next = position < info.size && !closed ? readChunk(handle, position, Math.min(chunkBytes, info.size - position)) : undefined;
        if (closed) break;
        if (!response.write(chunk)) await drained(response);
        if (closed) break;
      }
      if (next) await next.catch(() => undefined);
      if (closed || position < info.size) {
        response.destroy();
        return { complete: false };
      }
      response.end();
      return { complete: true };
    } finally {
      response.off("close", onClose);
    }
  } finally {
    await handle.close();
  }
}

async function readChunk(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  // A fresh buffer each time: one handed to write() may sit in the socket's queue until flushed.
  const buffer = Buffer.allocUnsafeSlow(length);
  const { bytesRead } = await handle.read(buffer, 0, length, position);
  return bytesRead === length ? buffer : buffer.subarray(0, bytesRead);
}

function drained(response: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      response.off("drain", done);
      response.off("close", done);
      resolve();
    };
    response.on("drain", done);
    response.on("close", done);
  });
}
