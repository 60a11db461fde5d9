import { parseNarInfo, parseStorePath, type NarInfo } from "@ferry/core";
import type { BinaryCache, CacheSweep } from "./binary-cache.js";
import { GC_ROOT_KINDS, type GcRoot, type GcRootKind } from "./gc-roots.js";

/**
 * How long after its narinfo was served a path counts as being fetched.
 * Nix asks for every narinfo of a closure first, then downloads the NARs one
 * after another; this covers a slow download of a large closure.
 */
export const FETCH_GRACE_MS = 15 * 60_000;

/** Kept paths are counted by the first reason that reaches them; "in-use": uploads, downloads and recent fetches. */
export type GcKeepReason = GcRootKind | "in-use";
const KEEP_REASONS: readonly GcKeepReason[] = [...GC_ROOT_KINDS, "in-use"];

export interface CacheGcOptions {
  /** An unreachable narinfo (or an orphan NAR) is deleted only once its file is this old, by its mtime. */
  minAgeMs: number;
  dryRun: boolean;
  /** Default FETCH_GRACE_MS; 0: served narinfos do not count (tests of the races that grace otherwise hides). */
  fetchGraceMs?: number;
  now?: () => number;
}

export interface CacheGcReport {
  dryRun: boolean;
  minAgeMs: number;
  /** Store paths whose narinfo was deleted (or would be, in a dry run), sorted. */
  deleted: string[];
  /** NAR files of the deleted paths that went with them. */
  deletedNars: number;
  /** NAR files no narinfo named (an interrupted push), deleted. */
  orphanNars: number;
  /** Bytes of narinfo and NAR files deleted. */
  bytesFreed: number;
  /** Narinfos left in the cache. */
  kept: number;
  /** Per reason: how many roots it had (distinct store paths) and how many cached paths it kept. */
  keptBy: Record<GcKeepReason, { roots: number; paths: number }>;
  /** Unreachable paths whose narinfo is younger than minAgeMs. */
  keptYoung: number;
  /** Narinfos that do not parse: never deleted, since what they reference is unknown. */
  keptUnreadable: number;
  /** Roots the cache holds no narinfo for (built and copied elsewhere, or already gone). */
  rootsAbsent: number;
  durationMs: number;
}

/**
 * Deletes from the cache what no root needs: the mark walks each root's
 * closure through the References of the cache's own narinfos (the controller
 * has no store of its own), and an unreachable narinfo older than the minimum
 * age goes with its NAR. Everything runs under the cache's write lock, roots
 * included, so no narinfo appears or changes between the mark and the sweep.
 *
 * Narinfos are deleted before NARs: readers find a path only through its
 * narinfo, so once it is gone no new download of its NAR starts, and a crash
 * in between leaves an orphan NAR (collected next time), never a narinfo that
 * points at nothing, which substituters would trust and then fail on. A
 * download already under way keeps its open file and completes.
 */
export async function collectCacheGarbage(cache: BinaryCache, roots: () => Promise<GcRoot[]>, options: CacheGcOptions): Promise<CacheGcReport> {
  const now = options.now ?? Date.now;
  return cache.sweep(async (sweep) => {
    const started = now();
    const texts = new Map(sweep.narInfos());
    const parsed = new Map<string, NarInfo | undefined>();
    const info = (hash: string): NarInfo | undefined => {
      if (!parsed.has(hash)) parsed.set(hash, parseOrUndefined(texts.get(hash)));
      return parsed.get(hash);
    };

    const rootList = await roots();
    const grace = options.fetchGraceMs ?? FETCH_GRACE_MS;
    const seeds = seedsByReason(rootList, sweep, grace > 0 ? started - grace : undefined);
    const rootsAbsent = [...new Set(rootList.map((root) => hashOf(root.storePath)))].filter((hash) => !texts.has(hash)).length;
    const keptBy = Object.fromEntries(KEEP_REASONS.map((reason) => [reason, { roots: 0, paths: 0 }])) as CacheGcReport["keptBy"];
    const reached = new Set<string>();
    for (const reason of KEEP_REASONS) {
      const queue = [...(seeds.get(reason) ?? [])];
      keptBy[reason].roots = queue.length;
      while (queue.length > 0) {
        const hash = queue.pop() as string;
        if (reached.has(hash) || !texts.has(hash)) continue;
        reached.add(hash);
        keptBy[reason].paths++;
        for (const reference of info(hash)?.references ?? []) queue.push(hashOf(reference));
      }
    }

    const doomed: string[] = [];
    const doomedNars = new Set<string>();
    let keptYoung = 0;
    let keptUnreadable = 0;
    let bytesFreed = 0;
    for (const hash of texts.keys()) {
      if (reached.has(hash)) continue;
      const narinfo = info(hash);
      if (!narinfo) {
        keptUnreadable++;
        continue;
      }
      if (sweep.activity.busy(narinfo.url)) {
        keptBy["in-use"].paths++;
        continue;
      }
      const file = await sweep.narInfoFile(hash);
      if (!file) continue;
      // Whole milliseconds, as Date.now() counts them: a file written in the same millisecond is not younger than a zero minimum age.
      if (Math.floor(file.mtimeMs) > started - options.minAgeMs) {
        keptYoung++;
        continue;
      }
      doomed.push(hash);
      doomedNars.add(narinfo.url);
      bytesFreed += file.size;
    }

    const doomedSet = new Set(doomed);
    const namedBefore = new Set<string>();
    const namedAfter = new Set<string>();
    for (const hash of texts.keys()) {
      const url = info(hash)?.url;
      if (url === undefined) continue;
      namedBefore.add(url);
      if (!doomedSet.has(hash)) namedAfter.add(url);
    }
    const narFiles = await sweep.narFiles();
    const narsToDelete = new Map<string, "path" | "orphan">();
    for (const [name, file] of narFiles) {
      if (sweep.activity.busy(name) || namedAfter.has(name)) continue;
      if (doomedNars.has(name)) narsToDelete.set(name, "path");
      else if (!namedBefore.has(name) && Math.floor(file.mtimeMs) <= started - options.minAgeMs) narsToDelete.set(name, "orphan");
    }

    const removedNars = options.dryRun ? [...narsToDelete.keys()] : await deleteInOrder(sweep, doomed, [...narsToDelete.keys()]);
    for (const name of removedNars) bytesFreed += narFiles.get(name)?.size ?? 0;
    const deleted = doomed.map((hash) => info(hash)?.storePath as string).sort();
    return {
      dryRun: options.dryRun,
      minAgeMs: options.minAgeMs,
      deleted,
      deletedNars: removedNars.filter((name) => narsToDelete.get(name) === "path").length,
      orphanNars: removedNars.filter((name) => narsToDelete.get(name) === "orphan").length,
      bytesFreed,
      kept: texts.size - doomed.length,
      keptBy,
      keptYoung,
      keptUnreadable,
      rootsAbsent,
      durationMs: Math.max(0, now() - started),
    };
  });
}

/** Narinfos first, made durable, then the NARs (see collectCacheGarbage). */
async function deleteInOrder(sweep: CacheSweep, narinfos: readonly string[], nars: readonly string[]): Promise<string[]> {
  await sweep.deleteNarInfos(narinfos);
  return sweep.deleteNars(nars);
}

/** Store hashes to start the mark from, per reason; duplicates dropped. */
function seedsByReason(roots: readonly GcRoot[], sweep: CacheSweep, servedSinceMs: number | undefined): Map<GcKeepReason, Set<string>> {
  const seeds = new Map<GcKeepReason, Set<string>>();
  const add = (reason: GcKeepReason, hash: string): void => {
    const set = seeds.get(reason) ?? new Set<string>();
    set.add(hash);
    seeds.set(reason, set);
  };
  for (const root of roots) add(root.kind, hashOf(root.storePath));
  const served = servedSinceMs === undefined ? [] : sweep.activity.servedSince(servedSinceMs);
  for (const hash of [...sweep.activity.busyHashes(), ...served]) add("in-use", hash);
  return seeds;
}

function hashOf(storePath: string): string {
  return parseStorePath(storePath).hash;
}

function parseOrUndefined(text: Buffer | undefined): NarInfo | undefined {
  if (text === undefined) return undefined;
  try {
    return parseNarInfo(text.toString("utf8"));
  } catch {
    return undefined;
  }
}
