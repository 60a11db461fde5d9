import type { FileHandle } from "node:fs/promises";

/** writev until everything is written (regular files rarely take less). */
export async function writeFully(out: FileHandle, buffers: Buffer[]): Promise<void> {
  let pending = buffers.filter((buffer) => buffer.length > 0);
  while (pending.length > 0) {
    let skip = (await out.writev(pending)).bytesWritten;
    const rest: Buffer[] = [];
    for (const buffer of pending) {
      if (skip >= buffer.length) skip -= buffer.length;
      else {
        rest.push(buffer.subarray(skip));
        skip = 0;
      }
    }
    pending = rest;
  }
}
