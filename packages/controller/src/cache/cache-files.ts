import { open } from "node:fs/promises";

export const NAR_FILE = /^nar\/[0-9a-z]{52}\.nar(?:\.(?:xz|zst|bz2|br|lzip|lz4|gz))?$/;

/** As fsyncDirectory, in the thread pool: a blocking fsync per upload stalled every other request. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
