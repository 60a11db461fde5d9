import { FerryError } from "@ferry/core";
import type { ClosureSource } from "../cache/closure-source.js";

export interface CacheRequirements {
  /** Accept closure paths for which the cache holds no signature at all. */
  allowUnsigned: boolean;
}

function listSome(paths: readonly string[]): string {
  return paths.slice(0, 5).join(", ") + (paths.length > 5 ? ` and ${paths.length - 5} more` : "");
}

/**
 * Refuses unless the cache can serve every path of every target's closure
 * and, unless allowed, holds some signature for each. The controller cannot
 * know which keys a host trusts, but a path with no signature at all would be
 * refused by every host that gets it from this cache. The same holds of an
 * external cache (--cache-url): its narinfos are judged alike.
 */
export async function requireClosuresInCache(cache: ClosureSource, storePaths: Iterable<string>, requirements: CacheRequirements): Promise<void> {
  for (const path of new Set(storePaths)) {
    const infos = [...(await cache.closureInfos([path]))];
    const missing = infos.filter(([, info]) => info === undefined).map(([p]) => p);
    if (missing.length > 0) {
      throw new FerryError("E_PATH_NOT_IN_CACHE", `the cache lacks ${missing.length} path(s) of the closure of ${path}: ${listSome(missing.sort())}`);
    }
    const unsigned = infos.filter(([, info]) => info?.sigs.length === 0).map(([p]) => p);
    if (unsigned.length > 0 && !requirements.allowUnsigned) {
      throw new FerryError(
        "E_CACHE_UNSIGNED",
        `the cache holds no signature for ${unsigned.length} path(s) of the closure of ${path}: ${listSome(unsigned.sort())}` +
          "; push them again with --signing-key-file, or pass --allow-unsigned",
      );
    }
  }
}
