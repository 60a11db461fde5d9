// A cache directory shared by two controllers (two BinaryCache instances on
// one directory, without a directory watch: on NFS the other machine's writes
// reach no watch), and the collection lock that keeps their collections apart.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "@ferry/core";
import { BinaryCache } from "../src/cache/binary-cache.js";
import { collectCacheGarbage } from "../src/cache/cache-gc.js";
import { GC_LOCK_FILE, withGcLock } from "../src/cache/gc-lock.js";
import { helloNarInfo as narinfo, helloPathOf as pathOf } from "./narinfo-fixture.js";
import { until } from "./fake-fleet.js";

const HASH = "pz5wv3mkbf4bwihvsz8yqydfwb9bfhy5";
const OTHER = "1zy01hjzwvvia6h9dq5xar88v77fgh9x";
const NAR = "nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar";
const OTHER_NAR = "nar/0ab1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p.nar";

/** Writes a path into the cache through `cache`, as a bundle publish does (files staged, then renamed in). */
async function publish(cache: BinaryCache, hash: string, url: string, sig?: string): Promise<void> {
  const staging = mkdtempSync(join(cache.dir, ".bundle-"));
  mkdirSync(join(staging, "nar"));
  writeFileSync(join(staging, url), "hello");
  writeFileSync(join(staging, `${hash}.narinfo`), narinfo(hash, url, sig));
  await cache.publishStaged(staging, [url, `${hash}.narinfo`]);
  rmSync(staging, { recursive: true, force: true });
}

/** Polls `check` for up to 5 s (fake-fleet's until). */
const eventually = (what: string, check: () => Promise<boolean>): Promise<true> => until(what, async () => (await check()) || undefined, 5000);

describe("two controllers on one cache directory", () => {
  let dir: string;
  let a: BinaryCache;
  let b: BinaryCache;
  let server: Server;
  let base: string;
  const get = (path: string): Promise<Response> => fetch(`${base}/${path}`, { signal: AbortSignal.timeout(10_000) });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "ferry-shared-cache-"));
    a = new BinaryCache(dir, () => undefined, silentLogger(), { watch: false });
    b = new BinaryCache(dir, () => undefined, silentLogger(), { watch: false });
    server = createServer((req, res) => void a.handle(req, res, decodeURIComponent((req.url ?? "/").slice(1)), () => "test"));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    base = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  });
  after(async () => {
    a.close();
    b.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  test("a path the other controller stored is found on disk at the first miss, then served from memory", async () => {
    await publish(b, HASH, NAR);
    const served = await get(`${HASH}.narinfo`);
    assert.equal(served.status, 200);
    assert.match(await served.text(), new RegExp(`StorePath: ${pathOf(HASH)}`));
    assert.equal((await a.narInfo(HASH))?.storePath, pathOf(HASH));
    assert.deepEqual([...(await a.closureInfos([pathOf(HASH)])).keys()], [pathOf(HASH)]);
  });

  test("a miss is remembered only briefly: a path stored after it is found within a few seconds", async () => {
    assert.equal((await get(`${OTHER}.narinfo`)).status, 404);
    await publish(b, OTHER, OTHER_NAR);
    await eventually("the other controller's path to be served", async () => (await get(`${OTHER}.narinfo`)).status === 200);
  });

  test("signatures the other controller added are seen by the deploy check, and kept by a later upload here", async () => {
    await publish(b, HASH, NAR, "b-key:c2lnLWI=");
    assert.deepEqual((await a.closureInfos([pathOf(HASH)])).get(pathOf(HASH))?.sigs, ["b-key:c2lnLWI="]);
    await publish(b, HASH, NAR, "b-key:c2lnLWI=");
    const put = await fetch(`${base}/${HASH}.narinfo`, { method: "PUT", body: narinfo(HASH, NAR, "a-key:c2lnLUE="), signal: AbortSignal.timeout(10_000) });
    assert.equal(put.status, 201);
    assert.deepEqual((await b.closureInfos([pathOf(HASH)])).get(pathOf(HASH))?.sigs.sort(), ["a-key:c2lnLUE=", "b-key:c2lnLWI="]);
  });

  test("a hit is answered from memory until the change is relayed: refresh re-reads what the other controller changed", async () => {
    const changed: string[] = [];
    const c = new BinaryCache(dir, () => undefined, silentLogger(), { watch: false, onLocalChange: (hash) => changed.push(hash) });
    try {
      assert.ok((await a.narInfo(HASH))?.sigs.includes("a-key:c2lnLUE="));
      await publish(c, HASH, NAR, "c-key:c2lnLUM=");
      assert.deepEqual(changed, [HASH], "the writer is told what it changed, to relay it to the other replicas");
      assert.ok((await a.narInfo(HASH))?.sigs.includes("a-key:c2lnLUE="), "still the old text in memory");
      await a.refresh(changed);
      assert.deepEqual((await a.narInfo(HASH))?.sigs, ["c-key:c2lnLUM="]);
    } finally {
      c.close();
    }
  });

  test("a path the other controller removed: the deploy check misses it, and its narinfo is dropped after a NAR 404", async () => {
    assert.equal((await get(`${HASH}.narinfo`)).status, 200, "served from memory first");
    await b.remove([pathOf(HASH)]);
    assert.equal((await get(`${HASH}.narinfo`)).status, 200, "a hit stays syscall-free: the stale entry is still served");
    assert.equal((await get(NAR)).status, 404);
    assert.equal((await get(`${HASH}.narinfo`)).status, 404, "dropped once its NAR was found gone");
    assert.equal((await a.closureInfos([pathOf(HASH)])).get(pathOf(HASH)), undefined);
  });

  test("the deploy check of a path removed elsewhere fails, without a NAR request first", async () => {
    await publish(b, HASH, NAR);
    assert.ok((await a.closureInfos([pathOf(HASH)])).get(pathOf(HASH)));
    await b.remove([pathOf(HASH)]);
    assert.equal((await a.closureInfos([pathOf(HASH)])).get(pathOf(HASH)), undefined);
    assert.equal((await get(`${HASH}.narinfo`)).status, 404, "and the entry is gone from memory too");
  });

  test("a collection here sees what the other controller stored: its path is kept as a root, its NAR is no orphan", async () => {
    await publish(b, HASH, NAR);
    const report = await collectCacheGarbage(a, () => Promise.resolve([{ kind: "desired", storePath: pathOf(HASH) }]), {
      minAgeMs: 0,
      dryRun: false,
      fetchGraceMs: 0,
    });
    assert.equal(report.orphanNars, 0);
    assert.ok(!report.deleted.includes(pathOf(HASH)));
    assert.ok(existsSync(join(dir, NAR)));
  });

  test("while one controller collects, a collection on the other is refused with E_CACHE_GC_RUNNING; afterwards it runs", async () => {
    let release!: () => void;
    const holding = new Promise<void>((resolve) => (release = resolve));
    let entered!: () => void;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    const first = b.sweep(async () => {
      entered();
      await holding;
    });
    await inside;
    await assert.rejects(
      collectCacheGarbage(a, () => Promise.resolve([]), { minAgeMs: 0, dryRun: true }),
      (error: { code?: string; message?: string }) => {
        assert.equal(error.code, "E_CACHE_GC_RUNNING");
        assert.match(error.message ?? "", /pid \d+/);
        return true;
      },
    );
    release();
    await first;
    assert.equal(existsSync(join(dir, GC_LOCK_FILE)), false, "the lock file goes with the collection");
    const report = await collectCacheGarbage(a, () => Promise.resolve([]), { minAgeMs: 0, dryRun: true });
    assert.equal(report.dryRun, true);
  });
});

describe("the collection lock file", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "ferry-gc-lock-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const lockBy = (host: string, pid: number, touchedMsAgo: number): void => {
    const file = join(dir, GC_LOCK_FILE);
    writeFileSync(file, JSON.stringify({ id: "0123456789abcdef", host, pid, startedAtMs: Date.now() - touchedMsAgo }));
    const at = new Date(Date.now() - touchedMsAgo);
    utimesSync(file, at, at);
  };

  test("a lock left by a dead process of this machine is broken", async () => {
    lockBy("this-machine", 2 ** 22 + 12345, 0);
    assert.equal(await withGcLock(dir, () => Promise.resolve("ran"), { host: "this-machine" }), "ran");
    assert.equal(existsSync(join(dir, GC_LOCK_FILE)), false);
  });

  test("another machine's lock is respected while it is touched, and broken once stale", async () => {
    lockBy("other-machine", 4242, 60_000);
    await assert.rejects(
      withGcLock(dir, () => Promise.resolve("ran"), { host: "this-machine" }),
      /E_CACHE_GC_RUNNING|a cache collection runs on other-machine \(pid 4242\)/,
    );
    lockBy("other-machine", 4242, 11 * 60_000);
    assert.equal(await withGcLock(dir, () => Promise.resolve("ran"), { host: "this-machine" }), "ran");
  });

  test("an unreadable lock file (being written, or damaged) counts as held until it is stale", async () => {
    writeFileSync(join(dir, GC_LOCK_FILE), "{");
    await assert.rejects(
      withGcLock(dir, () => Promise.resolve("ran")),
      (error: { code?: string }) => error.code === "E_CACHE_GC_RUNNING",
    );
    const old = new Date(Date.now() - 11 * 60_000);
    utimesSync(join(dir, GC_LOCK_FILE), old, old);
    assert.equal(await withGcLock(dir, () => Promise.resolve("ran")), "ran");
  });

  test("a failing collection lets go of the lock", async () => {
    await assert.rejects(
      withGcLock(dir, () => Promise.reject(new Error("boom"))),
      /boom/,
    );
    assert.equal(existsSync(join(dir, GC_LOCK_FILE)), false);
  });
});
