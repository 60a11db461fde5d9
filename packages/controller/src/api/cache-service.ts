import type { Logger } from "@ferry/core";
import type { OperatorServiceServer, RemoveCachePathsRequest, RemoveCachePathsResponse } from "@ferry/protocol";
import type { AuditLog } from "../audit/audit-log.js";
import type { Authenticator } from "../auth/authenticate.js";
import type { BinaryCache } from "../cache/binary-cache.js";
import { removeFromCache } from "../cache/cache-removal.js";
import type { StateStore } from "../store/state-store.js";
import { unaryHandler } from "./unary.js";

export interface CacheServiceDeps {
  store: StateStore;
  cache: BinaryCache;
  log: Logger;
  authenticator: Authenticator;
  audit: AuditLog;
}

/** Operator handlers for the binary cache's contents (uploads go over HTTP). */
export function createCacheHandlers(deps: CacheServiceDeps): Pick<OperatorServiceServer, "removeCachePaths"> {
  const unary = unaryHandler(deps.log, deps.authenticator);
  return {
    removeCachePaths: unary("RemoveCachePaths", async (request: RemoveCachePathsRequest, caller): Promise<RemoveCachePathsResponse> => {
      const result = await removeFromCache(deps.cache, deps.store, request.storePaths);
      const { removed, absent } = result;
      await deps.audit.record(caller.name, "cache.rm", removed.length === 1 ? (removed[0] as string) : `${removed.length} paths`, { removed, absent });
      return result;
    }),
  };
}
