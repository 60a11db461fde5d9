import type { Logger } from "@ferry/core";
import type { OperatorServiceServer, RemoveCachePathsRequest, RemoveCachePathsResponse } from "@ferry/protocol";
import type { BinaryCache } from "../cache/binary-cache.js";
import { removeFromCache } from "../cache/cache-removal.js";
import type { StateStore } from "../store/state-store.js";
import { unaryHandler } from "./unary.js";

export interface CacheServiceDeps {
  store: StateStore;
  cache: BinaryCache;
  log: Logger;
  adminTokenHash: string;
}

/** Operator handlers for the binary cache's contents (uploads go over HTTP). */
export function createCacheHandlers(deps: CacheServiceDeps): Pick<OperatorServiceServer, "removeCachePaths"> {
  const unary = unaryHandler(deps.log, deps.adminTokenHash);
  return {
    removeCachePaths: unary("RemoveCachePaths", async (request: RemoveCachePathsRequest): Promise<RemoveCachePathsResponse> =>
      removeFromCache(deps.cache, deps.store, request.storePaths),
    ),
  };
}
