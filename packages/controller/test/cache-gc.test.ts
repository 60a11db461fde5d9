// Cache garbage collection on a real file cache written by `nix copy`: which
// roots keep what (closures followed through the cache's own narinfos), the
// age rule, dry runs, orphan NARs, and paths under upload.
import { after, afterEach, before, describe, mock, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger, type LedgerEntry } from "@ferry/core";
import type { AuditLog } from "../src/audit/audit-log.js";
import { scheduleCacheGc } from "../src/cache/cache-retention.js";
import { startController } from "../src/controller.js";
import { collectCacheGarbage, type CacheGcOptions } from "../src/cache/cache-gc.js";
import { cacheGcRoots, type GcRoot } from "../src/cache/gc-roots.js";
import type { StateStore } from "../src/store/state-store.js";
import type { RolloutRecord } from "../src/store/rollout-records.js";
import { buildGcFixture, cachedPaths, copyCache, hashOf, narinfosWithoutNar, nixAvailable, type CacheCopy, type GcFixture } from "./gc-fixture.js";

const HOUR = 3_600_000;
const skip = nixAvailable() ? false : "needs nix-build";

describe("cache garbage collection", { skip }, () => {
  let fixture: GcFixture;
  let copy: CacheCopy;
  before(() => {
    fixture = buildGcFixture();
  });
  after(() => fixture?.cleanup());
  afterEach(() => copy?.close());

  const gc = (roots: GcRoot[], options: Partial<CacheGcOptions> = {}) =>
    collectCacheGarbage(copy.cache, async () => roots, { minAgeMs: 0, dryRun: false, fetchGraceMs: 0, ...options });
  /** Sets every narinfo and NAR file of the cache to `ageMs` old. */
  function age(ageMs: number): void {
    const when = new Date(Date.now() - ageMs);
    for (const name of readdirSync(copy.dir)) if (name.endsWith(".narinfo")) utimesSync(join(copy.dir, name), when, when);
    for (const name of readdirSync(join(copy.dir, "nar"))) utimesSync(join(copy.dir, "nar", name), when, when);
  }
  function snapshot(): string {
    const files = [...readdirSync(copy.dir).filter((name) => name.endsWith(".narinfo")), ...readdirSync(join(copy.dir, "nar")).map((name) => `nar/${name}`)];
    return files
      .sort()
      .map((name) => `${name} ${statSync(join(copy.dir, name)).mtimeMs}`)
      .join("\n");
  }

  test("a path reachable only through a previous system is kept; one no root reaches goes with its NAR", async () => {
    copy = copyCache(fixture);
    const { paths } = fixture;
    const narOf = async (path: string) => (await copy.cache.narInfo(hashOf(path)))?.url as string;
    const unusedNar = await narOf(paths.onlyUnused);
    const report = await gc([
      { storePath: paths.current, kind: "current" },
      { storePath: paths.previous, kind: "previous" },
    ]);
    const left = cachedPaths(copy.dir);
    for (const kept of [paths.current, paths.lib, paths.previous, paths.onlyPrevious]) assert.ok(left.has(kept), kept);
    for (const gone of [paths.unused, paths.onlyUnused, paths.desired, paths.rollout, paths.bundle, paths.big]) {
      assert.ok(!left.has(gone), gone);
      // The in-memory index follows: the cache no longer serves it.
      assert.equal(await copy.cache.narInfo(hashOf(gone)), undefined);
    }
    assert.ok(!existsSync(join(copy.dir, unusedNar)), "the NAR went with its narinfo");
    assert.deepEqual(narinfosWithoutNar(copy.dir), []);
    assert.deepEqual(report.deleted, [paths.unused, paths.onlyUnused, paths.desired, paths.rollout, paths.bundle, paths.big].sort());
    assert.equal(report.deletedNars, 6);
    assert.equal(report.kept, 4);
    assert.deepEqual(report.keptBy.current, { roots: 1, paths: 2 });
    assert.deepEqual(report.keptBy.previous, { roots: 1, paths: 2 }, "lib is counted under current, the first reason reaching it");
    assert.ok(report.bytesFreed > 8 * 1024 * 1024, String(report.bytesFreed));
  });

  test("every root kind keeps its closure; a root the cache lacks is counted, not an error", async () => {
    copy = copyCache(fixture);
    const { paths } = fixture;
    const report = await gc([
      { storePath: paths.desired, kind: "desired" },
      { storePath: paths.rollout, kind: "rollout" },
      { storePath: paths.bundle, kind: "bundle" },
      { storePath: "/nix/store/00000000000000000000000000000000-elsewhere", kind: "current" },
    ]);
    assert.deepEqual(report.deleted, [paths.unused, paths.onlyUnused, paths.current, paths.previous, paths.onlyPrevious, paths.big].sort());
    assert.equal(report.rootsAbsent, 1);
    assert.deepEqual(report.keptBy.rollout, { roots: 1, paths: 1 });
    assert.deepEqual(report.keptBy.bundle, { roots: 1, paths: 1 });
  });

  test("age: unneeded paths younger than the minimum age stay; by their narinfo's mtime", async () => {
    copy = copyCache(fixture);
    const { paths } = fixture;
    const roots: GcRoot[] = [{ storePath: paths.current, kind: "current" }];
    const young = await gc(roots, { minAgeMs: HOUR });
    assert.deepEqual(young.deleted, []);
    assert.equal(young.keptYoung, 8);
    age(2 * HOUR);
    // A narinfo touched since (pushed again) is young again, even though its NAR is old.
    const now = new Date();
    utimesSync(join(copy.dir, `${hashOf(paths.unused)}.narinfo`), now, now);
    const old = await gc(roots, { minAgeMs: HOUR });
    assert.equal(old.keptYoung, 1);
    assert.ok(cachedPaths(copy.dir).has(paths.unused));
    assert.ok(!cachedPaths(copy.dir).has(paths.onlyUnused));
    assert.deepEqual(narinfosWithoutNar(copy.dir), []);
  });

  test("a dry run reports the same and changes nothing", async () => {
    copy = copyCache(fixture);
    const roots: GcRoot[] = [{ storePath: fixture.paths.current, kind: "current" }];
    writeFileSync(join(copy.dir, "nar", `${"1".repeat(52)}.nar`), "orphan");
    age(2 * HOUR);
    const before = snapshot();
    const dry = await gc(roots, { dryRun: true, minAgeMs: HOUR });
    assert.equal(snapshot(), before);
    assert.equal(await copy.cache.narInfo(hashOf(fixture.paths.unused)).then(Boolean), true);
    const real = await gc(roots, { minAgeMs: HOUR });
    assert.deepEqual({ ...dry, dryRun: false, durationMs: 0 }, { ...real, durationMs: 0 });
    assert.equal(real.orphanNars, 1);
  });

  test("an orphan NAR (an interrupted push) goes once older than the minimum age; a young one stays", async () => {
    copy = copyCache(fixture);
    const everything: GcRoot[] = Object.values(fixture.paths).map((storePath) => ({ storePath, kind: "current" }));
    const orphan = join(copy.dir, "nar", `${"2".repeat(52)}.nar.zst`);
    writeFileSync(orphan, "left by a push that stopped before its narinfo");
    const fresh = await gc(everything, { minAgeMs: HOUR });
    assert.equal(fresh.orphanNars, 0);
    assert.ok(existsSync(orphan));
    const old = new Date(Date.now() - 2 * HOUR);
    utimesSync(orphan, old, old);
    const report = await gc(everything, { minAgeMs: HOUR });
    assert.equal(report.orphanNars, 1);
    assert.equal(report.bytesFreed, "left by a push that stopped before its narinfo".length);
    assert.ok(!existsSync(orphan));
    assert.deepEqual(report.deleted, []);
  });

  test("a path under upload or download is kept, with its closure; a recently served narinfo too", async () => {
    copy = copyCache(fixture);
    const { paths } = fixture;
    const roots: GcRoot[] = [];
    const uploading = copy.cache.activity.begin(hashOf(paths.unused));
    const downloadNar = (await copy.cache.narInfo(hashOf(paths.bundle)))?.url as string;
    const downloading = copy.cache.activity.begin(downloadNar);
    copy.cache.activity.noteServed(hashOf(paths.previous));
    const report = await gc(roots, { fetchGraceMs: HOUR });
    const left = cachedPaths(copy.dir);
    for (const kept of [paths.unused, paths.onlyUnused, paths.lib, paths.bundle, paths.previous, paths.onlyPrevious]) assert.ok(left.has(kept), kept);
    assert.equal(report.keptBy["in-use"].paths, 6);
    uploading();
    downloading();
    const later = await gc(roots, { fetchGraceMs: 0 });
    assert.equal(later.kept, 0);
    assert.deepEqual(readdirSync(join(copy.dir, "nar")), []);
  });

  test("the schedule runs a collection each period, audited under the controller's name, until stopped", async () => {
    copy = copyCache(fixture);
    const store = {
      listHosts: async () => [{ name: "web-1", desiredSystem: fixture.paths.current, currentSystem: "", previousSystem: "" }],
      rollouts: { activeRollouts: async () => [], rolloutsUpdatedSince: async () => [] },
    } as unknown as StateStore;
    const audited: string[] = [];
    const audit = { record: async (actor: string, action: string) => void audited.push(`${actor} ${action}`) } as unknown as AuditLog;
    mock.timers.enable({ apis: ["setInterval"] });
    try {
      const deps = { cache: copy.cache, store, bundles: async () => [], audit, log: silentLogger() };
      const stop = scheduleCacheGc(deps, { minAgeMs: 0, keepBundles: 0 }, 86_400_000);
      mock.timers.tick(86_400_000 - 1);
      assert.deepEqual(audited, []);
      mock.timers.tick(1);
      while (audited.length === 0) await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(audited, ["controller (scheduled cache gc) cache.gc"]);
      assert.deepEqual([...cachedPaths(copy.dir)].sort(), [fixture.paths.current, fixture.paths.lib].sort());
      stop();
      mock.timers.tick(10 * 86_400_000);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(audited.length, 1);
    } finally {
      mock.timers.reset();
    }
  });

  test("a narinfo that does not parse is kept (what it refers to is unknown)", async () => {
    const broken = `${"3".repeat(32)}.narinfo`;
    copy = copyCache(fixture, (dir) => writeFileSync(join(dir, broken), "not a narinfo\n"));
    const report = await gc([]);
    assert.equal(report.keptUnreadable, 1);
    assert.ok(existsSync(join(copy.dir, broken)));
    assert.equal(report.deleted.length, 10);
  });
});

describe("cache gc roots", () => {
  const host = (name: string, desiredSystem: string, currentSystem: string, previousSystem: string) => ({ name, desiredSystem, currentSystem, previousSystem });
  const rollout = (id: string, updatedAtMs: number, targets: [string, string][]): RolloutRecord =>
    ({ id, updatedAtMs, hosts: targets.map(([storePath, previousSystem], i) => ({ name: `h${i}`, storePath, previousSystem })) }) as unknown as RolloutRecord;
  const p = (name: string): string => `/nix/store/${name.padEnd(32, "a").slice(0, 32)}-${name}`;

  test("hosts' systems, running and recent rollouts (targets and previous systems), the newest K bundles", async () => {
    const nowMs = 10 * 86_400_000;
    const store = {
      listHosts: async () => [host("web-1", p("desired"), p("current"), p("previous")), host("web-2", "", "", "")],
      rollouts: {
        activeRollouts: async () => [rollout("r-active", 0, [[p("active"), p("activeprev")]])],
        rolloutsUpdatedSince: async (sinceMs: number) => [rollout("r-recent", nowMs - 1000, [[p("recent"), ""]])].filter((r) => r.updatedAtMs >= sinceMs),
      },
    } as unknown as StateStore;
    const bundle = (sequence: number, importedAtMs: number, path: string): LedgerEntry => ({
      sequence,
      importedAtMs,
      hosts: { "site-1": path },
      manifestSha256: "",
      createdAt: "",
      signer: "",
    });
    const bundles = [bundle(1, 1, p("bundleone")), bundle(3, 3, p("bundlethree")), bundle(2, 2, p("bundletwo"))];
    const roots = await cacheGcRoots(store, bundles, { nowMs, recentRolloutMs: 86_400_000, keepBundles: 2 });
    const byKind = (kind: string) =>
      roots
        .filter((root) => root.kind === kind)
        .map((root) => root.storePath)
        .sort();
    assert.deepEqual(byKind("desired"), [p("desired")]);
    assert.deepEqual(byKind("current"), [p("current")]);
    assert.deepEqual(byKind("previous"), [p("previous")]);
    assert.deepEqual(byKind("rollout"), [p("active"), p("activeprev"), p("recent")].sort());
    assert.deepEqual(byKind("bundle"), [p("bundlethree"), p("bundletwo")].sort());
    const none = await cacheGcRoots(store, bundles, { nowMs: nowMs + 2 * 86_400_000, recentRolloutMs: 86_400_000, keepBundles: 0 });
    assert.ok(!none.some((root) => root.storePath === p("recent")), "a rollout finished before the window is no root");
    assert.ok(!none.some((root) => root.kind === "bundle"));
  });
});

describe("controller --cache-gc-every", () => {
  test("a period outside 1 minute to 24 days is refused before the data directory is made", async () => {
    const parent = mkdtempSync(join(tmpdir(), "ferry-gc-every-"));
    try {
      for (const everyMs of [1000, 30 * 86_400_000, Number.NaN]) {
        await assert.rejects(
          startController({
            dataDir: join(parent, "data"),
            listen: { host: "127.0.0.1", port: 0 },
            grpcListen: { host: "127.0.0.1", port: 0 },
            cacheGc: { everyMs },
            log: silentLogger(),
          }),
          (error: { code?: string }) => error.code === "E_BAD_ARGUMENT",
        );
        assert.ok(!existsSync(join(parent, "data")));
      }
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });
});
