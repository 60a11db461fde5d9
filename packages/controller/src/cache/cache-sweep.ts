import { readdir, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { assertStoreHash } from "@ferry/core";
import type { CacheActivity } from "./cache-activity.js";
import type { CacheFileInfo, CacheSweep } from "./binary-cache.js";
import type { NarInfoIndex } from "./narinfo-index.js";
import { NAR_FILE, syncDirectory } from "./cache-files.js";

/** What a collection may read and delete in the cache directory; BinaryCache.sweep hands it out under its locks. */
export function directorySweep(dir: string, index: NarInfoIndex, activity: CacheActivity): CacheSweep {
  const fileInfo = async (file: string): Promise<CacheFileInfo | undefined> => {
    const info = await stat(file).catch(() => undefined);
    return info?.isFile() ? { size: info.size, mtimeMs: info.mtimeMs } : undefined;
  };
  return {
    activity,
    narInfos: () => index.entries(),
    narInfoFile: (hash) => fileInfo(join(dir, `${hash}.narinfo`)),
    async narFiles() {
      const found = new Map<string, CacheFileInfo>();
      for (const name of await readdir(join(dir, "nar"))) {
        const relative = `nar/${name}`;
        if (!NAR_FILE.test(relative)) continue;
        const info = await fileInfo(join(dir, relative));
        if (info) found.set(relative, info);
      }
      return found;
    },
    async deleteNarInfos(hashes) {
      for (const hash of hashes) {
        assertStoreHash(hash);
        index.delete(hash);
        await unlink(join(dir, `${hash}.narinfo`)).catch(() => undefined);
      }
      if (hashes.length > 0) await syncDirectory(dir);
    },
    async deleteNars(names) {
      const removed: string[] = [];
      const named = index.narUrls();
      for (const name of names) {
        if (!NAR_FILE.test(name) || activity.busy(name) || named.has(name)) continue;
        await unlink(join(dir, name)).then(
          () => removed.push(name),
          () => undefined,
        );
      }
      if (removed.length > 0) await syncDirectory(join(dir, "nar"));
      return removed;
    },
  };
}
