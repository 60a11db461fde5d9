import type { LedgerEntry, Logger } from "@ferry/core";
import type { AuditLog } from "../audit/audit-log.js";
import type { StateStore } from "../store/state-store.js";
import type { BinaryCache } from "./binary-cache.js";
import { collectCacheGarbage, type CacheGcReport } from "./cache-gc.js";
import { cacheGcRoots } from "./gc-roots.js";

/** A week: longer than any push or rollout takes, short enough that a cache fed daily stays a few closures deep. */
export const DEFAULT_GC_MIN_AGE_MS = 7 * 86_400_000;
/** The current bundle and two before it: a site can go back two imports without a new bundle. */
export const DEFAULT_GC_KEEP_BUNDLES = 3;
/** setTimeout's limit; a longer period would fire at once. */
export const MAX_GC_PERIOD_MS = 2 ** 31 - 1;

export interface CacheRetention {
  minAgeMs: number;
  keepBundles: number;
}

export interface CacheRetentionDeps {
  cache: BinaryCache;
  store: StateStore;
  /** The bundle ledger's imports, read at each run. */
  bundles: () => Promise<readonly LedgerEntry[]>;
  audit: AuditLog;
  log: Logger;
  now?: () => number;
}

/** One collection with its roots read under the cache's lock; a real run is logged and audited under `actor`. */
export async function runCacheGc(deps: CacheRetentionDeps, retention: CacheRetention, dryRun: boolean, actor: string): Promise<CacheGcReport> {
  const now = deps.now ?? Date.now;
  const roots = async () =>
    cacheGcRoots(deps.store, await deps.bundles(), { nowMs: now(), recentRolloutMs: retention.minAgeMs, keepBundles: retention.keepBundles });
  const report = await collectCacheGarbage(deps.cache, roots, { minAgeMs: retention.minAgeMs, dryRun, now });
  const summary = {
    dryRun,
    deleted: report.deleted.length,
    deletedNars: report.deletedNars,
    orphanNars: report.orphanNars,
    bytesFreed: report.bytesFreed,
    kept: report.kept,
    keptYoung: report.keptYoung,
    durationMs: report.durationMs,
    minAgeMs: retention.minAgeMs,
    token: actor,
  };
  deps.log.info(summary, dryRun ? "cache garbage collection (dry run)" : "cache garbage collected");
  if (!dryRun) {
    await deps.audit.record(actor, "cache.gc", `${report.deleted.length} paths`, { ...summary, paths: report.deleted.slice(0, 100) });
  }
  return report;
}

/** Runs a collection every `everyMs` until stopped; a failed run is logged and the next one comes on time. */
export function scheduleCacheGc(deps: CacheRetentionDeps, retention: CacheRetention, everyMs: number): () => void {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    runCacheGc(deps, retention, false, "controller (scheduled cache gc)")
      .catch((error: unknown) => deps.log.warn({ err: String(error) }, "scheduled cache garbage collection failed"))
      .finally(() => {
        running = false;
      });
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
