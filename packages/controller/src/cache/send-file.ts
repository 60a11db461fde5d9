import { open, type FileHandle } from "node:fs/promises";
import type { ServerResponse } from "node:http";

/**
 * Bytes per read. Node has no sendfile, so every byte is copied through user
 * space; large reads amortise the per-chunk cost (a thread-pool hop, a write
 * syscall). Measured with test/bench/cache.bench.ts's ceiling server on
 * loopback: 64 KiB reads reach about two thirds of 1 MiB reads; 4 MiB adds nothing.
 */
export const SEND_CHUNK_BYTES = 1024 * 1024;
/**
 * Read buffers kept for reuse. A fresh 1 MiB buffer per chunk made the
 * controller spend more time in garbage collection than copying (its heap is
 * large, and external memory growth triggers full collections): a profile of
 * one download showed 1.3 s of GC in 4 s. Two buffers per transfer in flight.
 */
const POOL_MAX = 32;
const pool: Buffer[] = [];

function take(size: number): Buffer {
  return (size === SEND_CHUNK_BYTES ? pool.pop() : undefined) ?? Buffer.allocUnsafeSlow(size);
}

function give(buffer: Buffer): void {
  if (buffer.length === SEND_CHUNK_BYTES && pool.length < POOL_MAX) pool.push(buffer);
}

export interface SendResult {
  /** False when the client went away before the last byte. */
  complete: boolean;
}

/** A read buffer and when the socket is done with what was last written from it. */
interface Slot {
  buffer: Buffer;
  written: Promise<boolean>;
}

/**
 * Opens `file` and answers with it: undefined (nothing sent) when it is not a
 * regular file, else 200 with its length and, unless `headOnly`, its bytes.
 * Two buffers alternate: the next chunk is read in the thread pool while the
 * current one is written on the main thread, and a buffer is read into again
 * only once the socket has taken what was written from it.
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
    if (headOnly || info.size === 0) {
      response.end();
      return { complete: true };
    }
    return { complete: await copy(handle, info.size, response, chunkBytes) };
  } finally {
    await handle.close();
  }
}

async function copy(handle: FileHandle, size: number, response: ServerResponse, chunkBytes: number): Promise<boolean> {
  let closed = false;
  // A write's callback may never come once the socket is gone; its buffer then counts as not reusable.
  const gone = new Promise<boolean>((resolve) =>
    response.once("close", () => {
      closed = true;
      resolve(false);
    }),
  );
  const slots: Slot[] = [
    { buffer: take(chunkBytes), written: Promise.resolve(true) },
    { buffer: take(chunkBytes), written: Promise.resolve(true) },
  ];
  let position = 0;
  let current = 0;
  let reading: Promise<number> | undefined = readInto(handle, slots[0] as Slot, position, Math.min(chunkBytes, size));
  try {
    while (reading) {
      const length = await reading;
      if (length === 0 || closed) break; // the file shrank, or the client left
      const slot = slots[current] as Slot;
      position += length;
      current = 1 - current;
      const next = slots[current] as Slot;
      reading = position < size ? next.written.then((ok) => (ok ? readInto(handle, next, position, Math.min(chunkBytes, size - position)) : 0)) : undefined;
      slot.written = Promise.race([new Promise<boolean>((resolve) => response.write(slot.buffer.subarray(0, length), (error) => resolve(!error))), gone]);
      if (response.writableNeedDrain) await drained(response);
    }
  } finally {
    if (reading) await reading.catch(() => 0);
  }
  const complete = !closed && position >= size;
  if (complete) response.end();
  else response.destroy();
  // Back to the pool only once the socket has taken their bytes; never waited on here.
  void Promise.all(slots.map((slot) => slot.written)).then((done) => {
    if (done.every(Boolean)) slots.forEach((slot) => give(slot.buffer));
  });
  return complete;
}

async function readInto(handle: FileHandle, slot: Slot, position: number, length: number): Promise<number> {
  const { bytesRead } = await handle.read(slot.buffer, 0, length, position);
  return bytesRead;
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
