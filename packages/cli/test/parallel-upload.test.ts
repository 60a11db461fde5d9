import { test } from "node:test";
import assert from "node:assert/strict";
import { uploadInParallel, type UploadItem } from "../src/parallel-upload.js";

const p = (name: string): string => `/nix/store/${name.padEnd(32, "0")}-${name}`;
const item = (name: string, refs: string[] = [], narSize = 1): UploadItem => ({ path: p(name), narSize, references: refs.map(p) });

/** Records what a fake cache sees: each batch's start, and refuses a path whose references are missing, as Nix's binary cache does. */
function recorder(present: Set<string>, items: readonly UploadItem[], delayMs = 5) {
  const byPath = new Map(items.map((i) => [i.path, i]));
  const batches: string[][] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const upload = async (paths: string[]): Promise<void> => {
    batches.push(paths);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    for (const path of paths) {
      const missing = (byPath.get(path)?.references ?? []).filter((ref) => ref !== path && !present.has(ref) && !paths.includes(ref));
      if (missing.length > 0) throw new Error(`reference ${missing[0]} of ${path} is not valid`);
    }
    paths.forEach((path) => present.add(path));
    inFlight--;
  };
  return { upload, batches, maxInFlight: () => maxInFlight };
}

test("every path is uploaded once, never before its references, with up to `jobs` uploads at once", async () => {
  const leaves = Array.from({ length: 40 }, (_, i) => item(`leaf${i}`, [], i));
  const mids = Array.from({ length: 8 }, (_, i) => item(`mid${i}`, [`leaf${i}`, `leaf${i + 8}`, "cached"]));
  const root = item("root", ["root", ...mids.map((m) => m.path.slice(44))]);
  const items = [root, ...mids, ...leaves];
  const present = new Set([p("cached")]);
  const r = recorder(present, items);
  await uploadInParallel(items, 4, r.upload);
  assert.equal(r.batches.flat().length, items.length);
  assert.equal(new Set(r.batches.flat()).size, items.length);
  assert.ok(r.maxInFlight() > 1 && r.maxInFlight() <= 4, `max in flight ${r.maxInFlight()}`);
  assert.deepEqual(r.batches.at(-1), [root.path]);
});

test("the batches started together carry about equal bytes, not the largest paths in one of them", async () => {
  // Sizes falling from 400 to 1: cut into runs of that order, the first batch of four held 7 times the bytes of the last.
  const items = Array.from({ length: 400 }, (_, i) => item(`leaf${i}`, [], 400 - i));
  const r = recorder(new Set(), items);
  await uploadInParallel(items, 4, r.upload);
  const bytes = new Map(items.map((i) => [i.path, i.narSize]));
  const sums = r.batches.map((batch) => batch.reduce((sum, path) => sum + (bytes.get(path) ?? 0), 0));
  assert.equal(r.batches.length, 4);
  assert.equal(new Set(r.batches.flat()).size, items.length);
  assert.ok(Math.max(...sums) - Math.min(...sums) <= 400, `batch bytes ${sums.join(", ")}`);
});

test("one job uploads in dependency order; a failed upload stops the rest and is what is thrown", async () => {
  const items = [item("b", ["a"]), item("a"), item("c", ["b"])];
  const r = recorder(new Set(), items);
  await uploadInParallel(items, 1, r.upload);
  assert.deepEqual(r.batches, [[p("a")], [p("b")], [p("c")]]);

  const calls: string[][] = [];
  await assert.rejects(
    uploadInParallel(items, 2, async (paths) => {
      calls.push(paths);
      throw new Error("upload refused");
    }),
    /upload refused/,
  );
  assert.deepEqual(calls, [[p("a")]], "nothing after the failure");
});

test("paths that wait on each other, or a bad job count, are refused before uploading", async () => {
  const calls: string[][] = [];
  await assert.rejects(
    uploadInParallel([item("x", ["y"]), item("y", ["x"])], 2, async (paths) => void calls.push(paths)),
    /wait on each other/,
  );
  await assert.rejects(
    uploadInParallel([item("x")], 0, async (paths) => void calls.push(paths)),
    /whole number/,
  );
  assert.deepEqual(calls, []);
});
