// Cache garbage collection against traffic, over real HTTP: a substituter
// racing a collection gets a whole path or a clean 404, never a narinfo whose
// NAR is gone or a cut NAR; a download under way finishes; collections run
// one at a time; a push racing collections leaves a consistent cache and
// succeeds when repeated.
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, get as httpGet, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { parseNarInfo, silentLogger } from "@ferry/core";
import { BinaryCache } from "../src/cache/binary-cache.js";
import { collectCacheGarbage, type CacheGcReport } from "../src/cache/cache-gc.js";
import type { GcRoot } from "../src/cache/gc-roots.js";
import { buildGcFixture, cachedPaths, copyCache, hashOf, narinfosWithoutNar, nixAvailable, type GcFixture } from "./gc-fixture.js";

const skip = nixAvailable() ? false : "needs nix-build";
const run = promisify(execFile);

describe("cache garbage collection under traffic", { skip }, () => {
  let fixture: GcFixture;
  let cache: BinaryCache;
  let dir: string;
  let closeCache: () => void;
  let server: Server | undefined;
  let base: string;

  before(() => {
    fixture = buildGcFixture();
  });
  after(() => fixture?.cleanup());
  afterEach(async () => {
    await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
    server?.closeAllConnections();
    server = undefined;
    closeCache?.();
  });

  async function serve(target: BinaryCache): Promise<void> {
    server = createServer((request, response) => void target.handle(request, response, (request.url ?? "/").slice(1), () => "test-pusher"));
    await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }
  function useCopy(): void {
    const copy = copyCache(fixture);
    ({ cache, dir } = copy);
    closeCache = () => copy.close();
  }
  const collect = (roots: GcRoot[] = []): Promise<CacheGcReport> =>
    collectCacheGarbage(cache, async () => roots, { minAgeMs: 0, dryRun: false, fetchGraceMs: 0 });

  /** What a substituter sees for one path: its narinfo, then its NAR. */
  async function fetchPath(path: string): Promise<"whole" | "narinfo 404" | "nar 404"> {
    const narinfo = await fetch(`${base}/${hashOf(path)}.narinfo`);
    if (narinfo.status === 404) return "narinfo 404";
    assert.equal(narinfo.status, 200);
    const info = parseNarInfo(await narinfo.text());
    const nar = await fetch(`${base}/${info.url}`);
    if (nar.status === 404) return "nar 404";
    assert.equal(nar.status, 200);
    const bytes = Buffer.from(await nar.arrayBuffer());
    assert.equal(bytes.length, info.fileSize ?? info.narSize, `a NAR served in full: ${info.url}`);
    return "whole";
  }

  test("a fetch racing collections gets the whole path or a clean 404; no narinfo is left without its NAR", async () => {
    useCopy();
    await serve(cache);
    const paths = Object.values(fixture.paths);
    const outcomes = new Map<string, number>();
    let collecting = true;
    const fetchers = Array.from({ length: 4 }, async () => {
      while (collecting) {
        for (const path of paths) {
          const outcome = await fetchPath(path);
          outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        }
      }
    });
    const keep: GcRoot[] = [{ storePath: fixture.paths.current, kind: "current" }];
    await new Promise((resolve) => setTimeout(resolve, 20));
    const report = await collect(keep);
    collecting = false;
    await Promise.all(fetchers);
    // A path whose NAR a fetcher was downloading at the mark is kept as in use; which one depends on timing.
    const inUse = report.keptBy["in-use"].paths;
    assert.equal(report.deleted.length + inUse, 8);
    assert.deepEqual(narinfosWithoutNar(dir), []);
    assert.ok((outcomes.get("whole") ?? 0) > 0);
    const left = [...cachedPaths(dir)];
    assert.equal(left.length, 2 + inUse);
    for (const path of [fixture.paths.current, fixture.paths.lib]) assert.ok(left.includes(path));
    for (const path of report.deleted) assert.ok(!left.includes(path));
  });

  test("narinfo read, path collected, then its NAR asked for: a clean 404", async () => {
    useCopy();
    await serve(cache);
    const narinfo = await fetch(`${base}/${hashOf(fixture.paths.unused)}.narinfo`);
    const info = parseNarInfo(await narinfo.text());
    await collect();
    assert.equal((await fetch(`${base}/${info.url}`)).status, 404);
    assert.equal((await fetch(`${base}/${hashOf(fixture.paths.unused)}.narinfo`)).status, 404);
  });

  test("a NAR download under way keeps its path through a collection and completes", async () => {
    useCopy();
    await serve(cache);
    const info = parseNarInfo(await (await fetch(`${base}/${hashOf(fixture.paths.big)}.narinfo`)).text());
    let received = 0;
    let report: CacheGcReport | undefined;
    await new Promise<void>((resolve, reject) => {
      httpGet(`${base}/${info.url}`, (response) => {
        response.once("data", (chunk: Buffer) => {
          received += chunk.length;
          response.pause();
          // The client holds the download open while a collection runs.
          collect().then((done) => {
            report = done;
            response.on("data", (more: Buffer) => (received += more.length));
            response.resume();
          }, reject);
        });
        response.on("end", resolve);
        response.on("error", reject);
      }).on("error", reject);
    });
    assert.equal(received, info.fileSize ?? info.narSize);
    assert.ok(!report?.deleted.includes(fixture.paths.big), "kept while its NAR was being sent");
    assert.equal(report?.keptBy["in-use"].paths, 1);
    // The server lets go of the NAR when its response has finished, which can come just after the client saw the end.
    let later = await collect();
    for (let tries = 0; later.deleted.length === 0 && tries < 100; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      later = await collect();
    }
    assert.deepEqual(later.deleted, [fixture.paths.big]);
  });

  test("collections called at once run one after the other, and together delete each path once", async () => {
    useCopy();
    const keep: GcRoot[] = [{ storePath: fixture.paths.previous, kind: "previous" }];
    const reports = await Promise.all(Array.from({ length: 20 }, () => collect(keep)));
    const deleted = reports.flatMap((report) => report.deleted).sort();
    assert.equal(new Set(deleted).size, deleted.length, "no path deleted twice");
    assert.equal(deleted.length, 7);
    assert.equal(reports.filter((report) => report.deleted.length > 0).length, 1);
    assert.deepEqual(narinfosWithoutNar(dir), []);
  });

  test("a push racing collections leaves no narinfo without its NAR, and the same push then succeeds", async () => {
    dir = mkdtempSync(join(tmpdir(), "ferry-gc-push-"));
    cache = new BinaryCache(dir, () => undefined, silentLogger());
    const emptyDir = dir;
    closeCache = () => {
      cache.close();
      rmSync(emptyDir, { recursive: true, force: true });
    };
    await serve(cache);
    const paths = Object.values(fixture.paths);
    const push = async (): Promise<boolean> => {
      // A Nix cache directory of its own: no narinfo remembered from the last push.
      const home = mkdtempSync(join(tmpdir(), "ferry-gc-nixcache-"));
      try {
        await run("nix", ["--extra-experimental-features", "nix-command", "copy", "--to", `${base}?compression=none`, ...paths], {
          env: { ...process.env, XDG_CACHE_HOME: home },
        });
        return true;
      } catch {
        return false;
      } finally {
        rmSync(home, { recursive: true, force: true });
      }
    };
    let pushing = true;
    const pushed = push().finally(() => (pushing = false));
    let collections = 0;
    while (pushing) {
      await collect();
      assert.deepEqual(narinfosWithoutNar(dir), []);
      collections++;
    }
    await pushed;
    assert.ok(collections > 0);
    assert.equal(await push(), true, "the push, repeated without collections, succeeds");
    assert.deepEqual([...cachedPaths(dir)].sort(), [...paths].sort());
    assert.deepEqual(narinfosWithoutNar(dir), []);
  });
});
