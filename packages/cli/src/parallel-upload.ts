import { FerryError } from "@ferry/core";

export interface UploadItem {
  path: string;
  narSize: number;
  references: readonly string[];
}

/**
 * Splits `items` (largest first) into `count` batches of about equal NAR
 * bytes: each item goes to the batch with the fewest bytes so far. Cut into
 * runs of the size order instead, the first of four batches of the bench
 * closure held 178 MiB and the last 76 MiB, and the push waited on the first.
 */
function balancedBatches(items: readonly UploadItem[], count: number): string[][] {
  const batches = Array.from({ length: count }, () => ({ paths: [] as string[], bytes: 0 }));
  for (const item of items) {
    const lightest = batches.reduce((least, batch) => (batch.bytes < least.bytes ? batch : least));
    lightest.paths.push(item.path);
    lightest.bytes += item.narSize;
  }
  return batches.map((batch) => batch.paths).filter((paths) => paths.length > 0);
}

/**
 * Uploads `items` with up to `jobs` uploads at a time. A binary cache refuses
 * a path whose references it lacks, so a path starts only once every
 * reference among `items` is uploaded (references outside `items` are in the
 * cache already). Each free upload slot takes a batch of ready paths, about
 * an equal share of what is ready, so one process start carries many paths
 * while the others still have work left when they free up; the batches
 * started together carry about equal bytes.
 */
export async function uploadInParallel(items: readonly UploadItem[], jobs: number, upload: (paths: string[]) => Promise<void>): Promise<void> {
  if (!Number.isInteger(jobs) || jobs < 1) throw new FerryError("E_BAD_ARGUMENT", `parallel uploads must be a whole number ≥ 1, not ${jobs}`);
  const pending = new Map(items.map((item) => [item.path, item]));
  const started = new Set<string>();
  const running = new Set<Promise<void>>();
  let failure: unknown;
  const isReady = (item: UploadItem): boolean => !started.has(item.path) && item.references.every((ref) => ref === item.path || !pending.has(ref));
  while (pending.size > 0 && failure === undefined) {
    const ready = [...pending.values()].filter(isReady).sort((a, b) => b.narSize - a.narSize);
    const share = Math.max(1, Math.ceil(ready.length / jobs));
    const slots = Math.min(jobs - running.size, ready.length);
    for (const batch of slots > 0 ? balancedBatches(ready.slice(0, share * slots), slots) : []) {
      batch.forEach((path) => started.add(path));
      const run: Promise<void> = upload(batch).then(
        () => {
          batch.forEach((path) => pending.delete(path));
          running.delete(run);
        },
        (error: unknown) => {
          failure ??= error;
          running.delete(run);
        },
      );
      running.add(run);
    }
    if (running.size === 0) {
      if (pending.size > 0 && failure === undefined) {
        throw new FerryError("E_INTERNAL", `${pending.size} path(s) wait on each other's references; nothing can be uploaded first`);
      }
      break;
    }
    await Promise.race(running);
  }
  await Promise.all(running);
  if (failure !== undefined) throw failure;
}
