// The external cache of --cache-url: a deploy's closure walked through
// <url>/<hash>.narinfo on a loopback server serving a fixture cache directory,
// and what a broken, slow or hostile cache gets.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "@ferry/core";
import { ExternalCache } from "../src/cache/external-cache.js";
import { requireClosuresInCache } from "../src/desired/closures.js";

const ROOT = "/nix/store/pz5wv3mkbf4bwihvsz8yqydfwb9bfhy5-system";
const LIB = "/nix/store/1zy01hjzwvvia6h9dq5xar88v77fgh9x-lib";
const LIBC = "/nix/store/2ab01hjzwvvia6h9dq5xar88v77fgh9x-libc";
const MISSING = "/nix/store/3cd01hjzwvvia6h9dq5xar88v77fgh9x-missing";
const BROKEN = "/nix/store/4af01hjzwvvia6h9dq5xar88v77fgh9x-broken";
const HUGE = "/nix/store/5gh01hjzwvvia6h9dq5xar88v77fgh9x-huge";
const UNSIGNED = "/nix/store/6ij01hjzwvvia6h9dq5xar88v77fgh9x-unsigned";
const hashOf = (path: string): string => path.slice("/nix/store/".length, "/nix/store/".length + 32);
const baseOf = (path: string): string => path.slice("/nix/store/".length);
const narinfo = (path: string, references: string[], signed = true): string =>
  [
    `StorePath: ${path}`,
    `URL: nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar`,
    "Compression: none",
    "NarHash: sha256:0dkpq4ayyk5lq5w4nqyyyzcsjy9fwz3b9d8y8pr3nvb0jkrk5yk7",
    "NarSize: 5",
    `References: ${references.map(baseOf).join(" ")}`,
    ...(signed ? ["Sig: ci-key:c2ln"] : []),
    "",
  ].join("\n");

describe("the external cache (--cache-url)", () => {
  let dir: string;
  let server: Server;
  let url: string;
  /** Requests per narinfo hash, to see the walk ask each path once. */
  const asked = new Map<string, number>();
  /** Overrides by hash: what a misbehaving cache does instead of serving the file. */
  const misbehave = new Map<string, (req: IncomingMessage, res: ServerResponse) => void>();
  let inFlight = 0;
  let maxInFlight = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "ferry-external-cache-"));
    const write = (path: string, text: string): void => writeFileSync(join(dir, `${hashOf(path)}.narinfo`), text);
    write(ROOT, narinfo(ROOT, [ROOT, LIB, LIBC]));
    write(LIB, narinfo(LIB, [LIBC]));
    write(LIBC, narinfo(LIBC, []));
    write(BROKEN, "StorePath /nix/store/no-colon\n");
    write(HUGE, narinfo(HUGE, []) + `Deriver: ${"x".repeat(200_000)}\n`);
    write(UNSIGNED, narinfo(UNSIGNED, [LIBC], false));
    server = createServer((req, res) => {
      const hash = /^\/cache\/([0-9a-z]{32})\.narinfo$/.exec(req.url ?? "")?.[1];
      if (!hash) return void res.writeHead(404).end();
      asked.set(hash, (asked.get(hash) ?? 0) + 1);
      const special = misbehave.get(hash);
      if (special) return special(req, res);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      // A little latency, so that concurrent requests overlap.
      setTimeout(() => {
        inFlight--;
        let text: Buffer;
        try {
          text = readFileSync(join(dir, `${hash}.narinfo`));
        } catch {
          return void res.writeHead(404).end();
        }
        res.writeHead(200, { "content-type": "text/x-nix-narinfo" }).end(text);
      }, 5);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/cache/`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  const cache = (timeoutMs = 5000, concurrency = 16): ExternalCache => new ExternalCache({ url, timeoutMs, concurrency, log: silentLogger() });

  test("a complete closure: every path with its narinfo, each asked once, a self-reference included", async () => {
    asked.clear();
    const infos = await cache().closureInfos([ROOT]);
    assert.deepEqual([...infos.keys()].sort(), [LIB, LIBC, ROOT].sort());
    assert.ok([...infos.values()].every((info) => info !== undefined));
    assert.deepEqual([...asked.values()], [1, 1, 1]);
    await requireClosuresInCache(cache(), [ROOT], { allowUnsigned: false });
  });

  test("a missing reference: E_PATH_NOT_IN_CACHE naming it", async () => {
    writeFileSync(join(dir, `${hashOf(ROOT)}.narinfo`), narinfo(ROOT, [LIB, MISSING]));
    try {
      await assert.rejects(requireClosuresInCache(cache(), [ROOT], { allowUnsigned: false }), (error: { code?: string; message?: string }) => {
        assert.equal(error.code, "E_PATH_NOT_IN_CACHE");
        assert.match(error.message ?? "", new RegExp(MISSING));
        assert.doesNotMatch(error.message ?? "", new RegExp(LIBC));
        return true;
      });
    } finally {
      writeFileSync(join(dir, `${hashOf(ROOT)}.narinfo`), narinfo(ROOT, [ROOT, LIB, LIBC]));
    }
  });

  test("a path without signature: E_CACHE_UNSIGNED as for the built-in cache, unless unsigned paths are allowed", async () => {
    await assert.rejects(requireClosuresInCache(cache(), [UNSIGNED], { allowUnsigned: false }), (error: { code?: string; message?: string }) => {
      assert.equal(error.code, "E_CACHE_UNSIGNED");
      assert.match(error.message ?? "", new RegExp(UNSIGNED));
      return true;
    });
    await requireClosuresInCache(cache(), [UNSIGNED], { allowUnsigned: true });
  });

  test("a cache answering 500: E_CACHE_UNREACHABLE naming the URL and status", async () => {
    misbehave.set(hashOf(LIB), (_req, res) => res.writeHead(500).end("oops"));
    try {
      await assert.rejects(cache().closureInfos([ROOT]), (error: { code?: string; message?: string }) => {
        assert.equal(error.code, "E_CACHE_UNREACHABLE");
        assert.match(error.message ?? "", new RegExp(`${hashOf(LIB)}\\.narinfo answered HTTP 500`));
        return true;
      });
    } finally {
      misbehave.delete(hashOf(LIB));
    }
  });

  test("a cache that never answers: E_CACHE_UNREACHABLE once the per-request timeout passes", async () => {
    misbehave.set(hashOf(LIBC), () => undefined);
    try {
      await assert.rejects(cache(300).closureInfos([ROOT]), (error: { code?: string; message?: string }) => {
        assert.equal(error.code, "E_CACHE_UNREACHABLE");
        assert.match(error.message ?? "", /no answer within 300 ms/);
        return true;
      });
    } finally {
      misbehave.delete(hashOf(LIBC));
    }
  });

  test("a cache that stops mid-body: E_CACHE_UNREACHABLE within the timeout", async () => {
    misbehave.set(hashOf(LIBC), (_req, res) => {
      res.writeHead(200, { "content-length": "1000" });
      res.write("StorePath: ");
    });
    try {
      await assert.rejects(cache(300).closureInfos([LIBC]), (error: { code?: string }) => error.code === "E_CACHE_UNREACHABLE");
    } finally {
      misbehave.delete(hashOf(LIBC));
    }
  });

  test("no server at all: E_CACHE_UNREACHABLE with the network's reason", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const address = closed.address();
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const gone = new ExternalCache({ url: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`, log: silentLogger() });
    await assert.rejects(gone.closureInfos([LIBC]), (error: { code?: string; message?: string }) => {
      assert.equal(error.code, "E_CACHE_UNREACHABLE");
      assert.match(error.message ?? "", /ECONNREFUSED/);
      return true;
    });
  });

  test("a narinfo with bad syntax: E_CACHE_BAD_NARINFO naming its URL", async () => {
    await assert.rejects(cache().closureInfos([BROKEN]), (error: { code?: string; message?: string }) => {
      assert.equal(error.code, "E_CACHE_BAD_NARINFO");
      assert.match(error.message ?? "", new RegExp(`${hashOf(BROKEN)}\\.narinfo is not a narinfo: malformed narinfo line`));
      return true;
    });
  });

  test("a narinfo for another path: E_CACHE_BAD_NARINFO", async () => {
    misbehave.set(hashOf(MISSING), (_req, res) => res.writeHead(200).end(narinfo(LIBC, [])));
    try {
      await assert.rejects(cache().closureInfos([MISSING]), /describes .*-libc, not .*-missing/);
    } finally {
      misbehave.delete(hashOf(MISSING));
    }
  });

  test("a huge narinfo is refused without reading it all, declared or streamed", async () => {
    await assert.rejects(cache().closureInfos([HUGE]), (error: { code?: string; message?: string }) => {
      assert.equal(error.code, "E_CACHE_BAD_NARINFO");
      assert.match(error.message ?? "", /larger than 65536 bytes/);
      return true;
    });
    let sent = 0;
    misbehave.set(hashOf(HUGE), (_req, res) => {
      // Chunked, no length: an endless body, stopped by the reader, not by its end.
      res.writeHead(200);
      const more = (): void => {
        while (sent < 64 * 1024 * 1024 && res.write(Buffer.alloc(16 * 1024, "x"))) sent += 16 * 1024;
        if (sent < 64 * 1024 * 1024 && !res.destroyed) res.once("drain", more);
      };
      more();
    });
    try {
      await assert.rejects(cache().closureInfos([HUGE]), /larger than 65536 bytes/);
      assert.ok(sent < 16 * 1024 * 1024, `read stopped early (${sent} bytes sent)`);
    } finally {
      misbehave.delete(hashOf(HUGE));
    }
  });

  test("a wide closure is walked with at most the configured requests in flight", async () => {
    const leaves = Array.from({ length: 60 }, (_, i) => `/nix/store/${i.toString().padStart(2, "0")}x01hjzwvvia6h9dq5xar88v77fgh9x-leaf`);
    const top = "/nix/store/7kl01hjzwvvia6h9dq5xar88v77fgh9x-top";
    for (const leaf of leaves) writeFileSync(join(dir, `${hashOf(leaf)}.narinfo`), narinfo(leaf, []));
    writeFileSync(join(dir, `${hashOf(top)}.narinfo`), narinfo(top, leaves));
    maxInFlight = 0;
    const infos = await cache(5000, 4).closureInfos([top]);
    assert.equal(infos.size, 61);
    assert.ok(maxInFlight <= 4 && maxInFlight >= 2, `in flight at most 4, saw ${maxInFlight}`);
  });

  test("a bad URL is refused when the controller starts; credentials in it go to a header, not the logs", () => {
    assert.throws(() => new ExternalCache({ url: "s3://bucket", log: silentLogger() }), /must be http:\/\/ or https:\/\//);
    assert.throws(() => new ExternalCache({ url: "not a url", log: silentLogger() }), /not a URL/);
    assert.equal(new ExternalCache({ url: "https://ci:secret@cache.example/nix/", log: silentLogger() }).url, "https://cache.example/nix");
  });
});
