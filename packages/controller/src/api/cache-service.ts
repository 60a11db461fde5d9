import { FerryError, type LedgerEntry, type Logger } from "@ferry/core";
import type {
  CollectCacheGarbageRequest,
  CollectCacheGarbageResponse,
  OperatorServiceServer,
  RemoveCachePathsRequest,
  RemoveCachePathsResponse,
} from "@ferry/protocol";
import type { AuditLog } from "../audit/audit-log.js";
import type { Authenticator } from "../auth/authenticate.js";
import type { BinaryCache } from "../cache/binary-cache.js";
import { removeFromCache } from "../cache/cache-removal.js";
import type { CacheGcReport } from "../cache/cache-gc.js";
import { DEFAULT_GC_KEEP_BUNDLES, DEFAULT_GC_MIN_AGE_MS, runCacheGc, type CacheRetention } from "../cache/cache-retention.js";
import type { StateStore } from "../store/state-store.js";
import { unaryHandler } from "./unary.js";

export interface CacheServiceDeps {
  store: StateStore;
  cache: BinaryCache;
  log: Logger;
  authenticator: Authenticator;
  audit: AuditLog;
  /** The bundle ledger's imports (bundles kept by garbage collection); none when absent. */
  bundles?: () => Promise<readonly LedgerEntry[]>;
  /** What a collection keeps when the request leaves a field unset (the controller's --cache-gc-* flags). */
  retention?: Partial<CacheRetention>;
}

/** Deleted paths listed in a response: enough to read, far below the gRPC message limit. */
const DELETED_LISTED = 1000;
/** Ten years: a larger minimum age is a mistake (or an overflow), not a policy. */
const MAX_MIN_AGE_SECONDS = 10 * 365 * 86_400;
/** The ledger keeps at most 50 imports per site. */
const MAX_KEEP_BUNDLES = 10_000;

/** Operator handlers for the binary cache's contents (uploads go over HTTP). */
export function createCacheHandlers(deps: CacheServiceDeps): Pick<OperatorServiceServer, "removeCachePaths" | "collectCacheGarbage"> {
  const unary = unaryHandler(deps.log, deps.authenticator);
  const retentionDeps = { ...deps, bundles: deps.bundles ?? (async () => []) };
  return {
    removeCachePaths: unary("RemoveCachePaths", async (request: RemoveCachePathsRequest, caller): Promise<RemoveCachePathsResponse> => {
      const result = await removeFromCache(deps.cache, deps.store, request.storePaths);
      const { removed, absent } = result;
      await deps.audit.record(caller.name, "cache.rm", removed.length === 1 ? (removed[0] as string) : `${removed.length} paths`, { removed, absent });
      return result;
    }),
    collectCacheGarbage: unary("CollectCacheGarbage", async (request: CollectCacheGarbageRequest, caller): Promise<CollectCacheGarbageResponse> => {
      const retention = requestedRetention(request, deps.retention);
      const report = await runCacheGc(retentionDeps, retention, request.dryRun, caller.name);
      return toResponse(report);
    }),
  };
}

function requestedRetention(request: CollectCacheGarbageRequest, defaults: Partial<CacheRetention> = {}): CacheRetention {
  const { minAgeSeconds, keepBundles } = request;
  if (minAgeSeconds !== undefined && !(Number.isSafeInteger(minAgeSeconds) && minAgeSeconds >= 0 && minAgeSeconds <= MAX_MIN_AGE_SECONDS)) {
    throw new FerryError("E_BAD_ARGUMENT", `the minimum age must be from 0 to ${MAX_MIN_AGE_SECONDS} seconds (ten years), got ${minAgeSeconds}`);
  }
  if (keepBundles !== undefined && keepBundles > MAX_KEEP_BUNDLES) {
    throw new FerryError("E_BAD_ARGUMENT", `keep at most ${MAX_KEEP_BUNDLES} bundles, got ${keepBundles}`);
  }
  return {
    minAgeMs: minAgeSeconds === undefined ? (defaults.minAgeMs ?? DEFAULT_GC_MIN_AGE_MS) : minAgeSeconds * 1000,
    keepBundles: keepBundles ?? defaults.keepBundles ?? DEFAULT_GC_KEEP_BUNDLES,
  };
}

function toResponse(report: CacheGcReport): CollectCacheGarbageResponse {
  return {
    dryRun: report.dryRun,
    minAgeSeconds: Math.round(report.minAgeMs / 1000),
    deleted: report.deleted.slice(0, DELETED_LISTED),
    deletedCount: report.deleted.length,
    deletedNars: report.deletedNars,
    orphanNars: report.orphanNars,
    bytesFreed: report.bytesFreed,
    kept: report.kept,
    keptBy: Object.entries(report.keptBy).map(([reason, counts]) => ({ reason, ...counts })),
    keptYoung: report.keptYoung,
    keptUnreadable: report.keptUnreadable,
    rootsAbsent: report.rootsAbsent,
    durationMs: report.durationMs,
  };
}
