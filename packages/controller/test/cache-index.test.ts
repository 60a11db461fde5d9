// The cache's in-memory narinfo index and its large-file NAR serving, on a
// BinaryCache behind a plain loopback HTTP server (no controller, no nginx).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer, request as httpRequest, type Server } from "node:http";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { BinaryCache } from "@ferry/controller";
import { helloNarInfo as narinfo } from "./narinfo-fixture.js";
import { until } from "./fake-fleet.js";

const HASH = "pz5wv3mkbf4bwihvsz8yqydfwb9bfhy5";
const OTHER = "1zy01hjzwvvia6h9dq5xar88v77fgh9x";
const THIRD = "2ab01hjzwvvia6h9dq5xar88v77fgh9x";
const NAR = "nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar";
const BIG = "nar/0ab1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p.nar.zst";

interface Served {
  cache: BinaryCache;
  url: string;
  lines: Array<{ level: number; msg: string }>;
  close(): Promise<void>;
}

async function serve(dir: string): Promise<Served> {
  const lines: Array<{ level: number; msg: string }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n")) if (line) lines.push(JSON.parse(line) as { level: number; msg: string });
      done();
    },
  });
  const cache = new BinaryCache(dir, () => undefined, pino({ level: "debug" }, sink));
  const server: Server = createServer(
    (req, res) => void cache.handle(req, res, decodeURIComponent((req.url ?? "/").slice("/cache/".length)), () => "test-uploader"),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    cache,
    url: `http://127.0.0.1:${port}/cache`,
    lines,
    async close() {
      cache.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const signal = (): AbortSignal => AbortSignal.timeout(10_000);
const get = (s: Served, path: string, method = "GET"): Promise<Response> => fetch(`${s.url}/${path}`, { method, signal: signal() });
const put = (s: Served, path: string, body: string | Uint8Array): Promise<Response> => fetch(`${s.url}/${path}`, { method: "PUT", body, signal: signal() });

/** Polls `check` for up to 5 s (fake-fleet's until). */
const eventually = (what: string, check: () => Promise<boolean>): Promise<true> => until(what, async () => (await check()) || undefined, 5000);

let dir: string;
let s: Served;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "ferry-cache-index-"));
  s = await serve(dir);
});
after(async () => {
  await s.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("narinfo index", () => {
  test("a miss is 404; a PUT makes it a hit at once, GET and HEAD", async () => {
    assert.equal((await get(s, `${HASH}.narinfo`)).status, 404);
    assert.equal((await put(s, NAR, "hello")).status, 201);
    assert.equal((await put(s, `${HASH}.narinfo`, narinfo(HASH, NAR))).status, 201);
    const hit = await get(s, `${HASH}.narinfo`);
    assert.equal(hit.status, 200);
    assert.equal(await hit.text(), narinfo(HASH, NAR));
    const head = await get(s, `${HASH}.narinfo`, "HEAD");
    assert.equal(head.headers.get("content-length"), String(Buffer.byteLength(narinfo(HASH, NAR))));
    assert.equal(await head.text(), "");
    assert.equal((await s.cache.narInfo(HASH))?.url, NAR);
  });

  test("a second PUT with another signature is merged into what is served; other contents are refused", async () => {
    assert.equal((await put(s, `${HASH}.narinfo`, narinfo(HASH, NAR, "k1:AAAA"))).status, 201);
    assert.match(await (await get(s, `${HASH}.narinfo`)).text(), /^Sig: k1:AAAA$/m);
    const conflict = narinfo(HASH, NAR).replace("NarSize: 5", "NarSize: 6");
    assert.equal((await put(s, `${HASH}.narinfo`, conflict)).status, 409);
    assert.match(await (await get(s, `${HASH}.narinfo`)).text(), /^NarSize: 5$/m);
  });

  test("publishStaged moves staged files in and serves their narinfos", async () => {
    const staging = mkdtempSync(join(dir, ".bundle-"));
    mkdirSync(join(staging, "nar"));
    const nar = "nar/1111111111111111111111111111111111111111111111111111.nar.zst";
    writeFileSync(join(staging, nar), "staged nar");
    writeFileSync(join(staging, `${OTHER}.narinfo`), narinfo(OTHER, nar));
    assert.equal((await get(s, `${OTHER}.narinfo`)).status, 404);
    await s.cache.publishStaged(staging, [nar, `${OTHER}.narinfo`]);
    assert.equal(await (await get(s, `${OTHER}.narinfo`)).text(), narinfo(OTHER, nar));
    assert.equal(await (await get(s, nar)).text(), "staged nar");
    assert.equal(existsSync(join(staging, nar)), false);
    await assert.rejects(s.cache.publishStaged(staging, ["../escape"]), /not a cache file name/);
    rmSync(staging, { recursive: true });
  });

  test("remove drops the narinfo from the index, and its NAR unless another narinfo names it", async () => {
    assert.equal((await put(s, `${THIRD}.narinfo`, narinfo(THIRD, NAR))).status, 201);
    const first = await s.cache.remove([`/nix/store/${HASH}-hello`]);
    assert.deepEqual(first.removed, [`/nix/store/${HASH}-hello`]);
    assert.equal((await get(s, `${HASH}.narinfo`)).status, 404);
    assert.equal((await get(s, NAR)).status, 200, "still named by the third narinfo");
    await s.cache.remove([`/nix/store/${THIRD}-hello`]);
    assert.equal((await get(s, `${THIRD}.narinfo`)).status, 404);
    assert.equal((await get(s, NAR)).status, 404);
    assert.equal(await s.cache.narInfo(THIRD), undefined);
  });

  test("a restart loads the narinfos on disk; a narinfo deleted or added by hand is seen without one", async () => {
    await s.close();
    s = await serve(dir);
    assert.equal((await get(s, `${OTHER}.narinfo`)).status, 200, "published before the restart");
    assert.equal((await get(s, `${HASH}.narinfo`)).status, 404, "removed before the restart");
    unlinkSync(join(dir, `${OTHER}.narinfo`));
    await eventually("the deletion to be seen", async () => (await get(s, `${OTHER}.narinfo`)).status === 404);
    writeFileSync(join(dir, `${HASH}.narinfo`), narinfo(HASH, NAR));
    await eventually("the addition to be seen", async () => (await get(s, `${HASH}.narinfo`)).status === 200);
  });
});

describe("NAR serving", () => {
  // Not a multiple of the read size: the last chunk is short.
  const big = randomBytes(5 * 1024 * 1024 + 12345);

  test("a large NAR comes back byte for byte; HEAD gives its length and no body", async () => {
    writeFileSync(join(dir, BIG), big);
    const response = await get(s, BIG);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "application/x-nix-nar");
    assert.equal(response.headers.get("content-length"), String(big.length));
    assert.ok(Buffer.from(await response.arrayBuffer()).equals(big));
    const head = await get(s, BIG, "HEAD");
    assert.equal(head.headers.get("content-length"), String(big.length));
    assert.equal((await head.arrayBuffer()).byteLength, 0);
    assert.equal((await get(s, "nar/2222222222222222222222222222222222222222222222222222.nar")).status, 404);
  });

  test("concurrent downloads of different NARs, with a client leaving among them, each get their own bytes (read buffers are reused)", async () => {
    const files = Array.from({ length: 4 }, (_, i) => ({
      name: `nar/${String(i).repeat(52)}.nar`,
      bytes: randomBytes(3 * 1024 * 1024 + i * 7919),
    }));
    for (const f of files) writeFileSync(join(dir, f.name), f.bytes);
    for (let round = 0; round < 3; round++) {
      const aborted = new AbortController();
      const leaver = fetch(`${s.url}/${files[0]?.name}`, { signal: aborted.signal }).then(async (r) => {
        const reader = r.body?.getReader();
        await reader?.read();
        aborted.abort();
      });
      const bodies = await Promise.all(files.map(async (f) => Buffer.from(await (await get(s, f.name)).arrayBuffer())));
      await leaver.catch(() => undefined);
      bodies.forEach((body, i) => assert.ok(body.equals(files[i]?.bytes as Buffer), `round ${round}: ${files[i]?.name} differs`));
    }
  });

  test("a client leaving mid-NAR is logged at debug, never as a warning, and the server keeps serving", async () => {
    writeFileSync(join(dir, BIG), Buffer.concat([big, big, big, big]));
    const before = s.lines.length;
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest(`${s.url}/${BIG}`, (res) => {
        res.once("data", () => {
          req.destroy();
          resolve();
        });
      });
      req.on("error", (error) => (req.destroyed ? undefined : reject(error)));
      req.end();
    });
    await eventually("the early close to be logged", () =>
      Promise.resolve(s.lines.slice(before).some((line) => line.msg === "client left before the NAR was sent")),
    );
    const logged = s.lines.slice(before);
    assert.deepEqual(
      logged.filter((line) => line.level >= 40),
      [],
    );
    assert.equal(logged.find((line) => line.msg === "client left before the NAR was sent")?.level, 20);
    assert.equal((await get(s, `${HASH}.narinfo`)).status, 200);
  });

  test("an upload the client abandons is logged at debug, leaves no temp file, and stores nothing", async () => {
    const before = s.lines.length;
    const target = `nar/${"5".repeat(52)}.nar`;
    await new Promise<void>((resolve) => {
      const req = httpRequest(`${s.url}/${target}`, { method: "PUT", headers: { "content-length": String(8 * 1024 * 1024) } });
      req.on("error", () => resolve());
      req.write(randomBytes(1024 * 1024), () =>
        setTimeout(() => {
          req.destroy();
          resolve();
        }, 50),
      );
    });
    await eventually("the abandoned upload to be logged", () =>
      Promise.resolve(s.lines.slice(before).some((line) => line.msg === "client left during a cache request")),
    );
    const logged = s.lines.slice(before);
    assert.deepEqual(
      logged.filter((line) => line.level >= 40),
      [],
    );
    assert.equal((await get(s, target)).status, 404);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.startsWith(".upload-")),
      [],
    );
  });
});
