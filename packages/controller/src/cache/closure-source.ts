import type { NarInfo } from "@ferry/core";

/**
 * Where a deploy checks that its closures can be fetched: the controller's
 * own cache directory (BinaryCache) or an external Nix binary cache the CI
 * pushes to (ExternalCache, --cache-url). desired/ asks through this alone.
 */
export interface ClosureSource {
  /**
   * The closures of `roots` as the cache's narinfo References describe them:
   * each path with its narinfo, or undefined where the cache cannot serve it;
   * such a path's references stay unknown. Throws when the cache cannot be
   * asked at all (E_CACHE_UNREACHABLE) or answers nonsense (E_CACHE_BAD_NARINFO).
   */
  closureInfos(roots: Iterable<string>): Promise<Map<string, NarInfo | undefined>>;
  /**
   * Runs `work` while no garbage collection of this controller's runs, so a
   * collection either sees the roots `work` records or ran entirely before
   * its check. An external cache is collected by whoever runs it.
   */
  withoutCollection<T>(work: () => Promise<T>): Promise<T>;
}
