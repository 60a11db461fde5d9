import type { Logger } from "@ferry/core";
import { BinaryCache, type UploadRecorder } from "./binary-cache.js";
import type { ClosureSource } from "./closure-source.js";
import { ExternalCache } from "./external-cache.js";

export interface CacheOptions {
  /** The cache directory; default DATA_DIR/cache. Replicas may share one (NFS and the like). */
  cacheDir?: string | undefined;
  /** An external Nix binary cache that deploys are checked against instead of the directory. */
  cacheUrl?: string | undefined;
}

export interface OpenedCache {
  /** The cache this controller serves and fills (uploads, bundles, gc). */
  cache: BinaryCache;
  /** What deploys are checked against: `cache`, or the external cache. */
  closures: ClosureSource;
  /** For the start-up log: where the cache is, credentials left out. */
  describe: { cacheDir: string; cacheUrl: string | null };
}

/**
 * The controller's cache as its options say. With an external cache the
 * directory is still served (bundles are imported into it, a push may still
 * go there), but a deploy is refused only by what the external cache lacks:
 * agents fetch from that cache, which they list in their own substituters.
 */
export function openCache(
  options: CacheOptions,
  defaultDir: string,
  recordUpload: UploadRecorder,
  log: Logger,
  /** Told of every narinfo this process stores, changes or removes: replicas sharing the directory relay it. */
  onLocalChange?: (hash: string) => void,
): OpenedCache {
  const external = options.cacheUrl ? new ExternalCache({ url: options.cacheUrl, log }) : undefined;
  const dir = options.cacheDir ?? defaultDir;
  const cache = new BinaryCache(dir, recordUpload, log, onLocalChange ? { onLocalChange } : {});
  return { cache, closures: external ?? cache, describe: { cacheDir: dir, cacheUrl: external?.url ?? null } };
}
