// A plain file cache tarball with a detached signed manifest (ferry bundle
// sign-cache): assembled into a format 1 bundle and checked by the one bundle
// verifier. The cache here is the fake one of bundle-helpers, packed by the
// system's tar as a site would; the e2e bundle test uses one Nix wrote.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FerryError, openCacheTarBundle, signFileCache, verifyBundle, type ErrorCode } from "@ferry/core";
import { chunks, fakeStorePath, makeCache, makeKey, type FakePath } from "./bundle-helpers.js";

const key = makeKey("site-deploy-1");
const intruder = makeKey("intruder-1");
const root = mkdtempSync(join(tmpdir(), "ferry-cache-manifest-"));
after(() => rmSync(root, { recursive: true, force: true }));

let counter = 0;

interface Site {
  dir: string;
  cache: string;
  tarball: string;
  manifestFile: string;
  paths: FakePath[];
}

function tar(cache: string, tarball: string): void {
  const made = spawnSync("tar", ["-C", cache, "-cf", tarball, "."]);
  assert.equal(made.status, 0, made.stderr.toString());
}

async function site(signer = key): Promise<Site> {
  const dir = mkdtempSync(join(root, `s${counter++}-`));
  const lib = fakeStorePath("lib");
  const system = fakeStorePath("nixos-system-web-1");
  const paths: FakePath[] = [
    { storePath: lib, references: [lib], size: 3000 },
    { storePath: system, references: [lib], size: 200_000 },
  ];
  const cache = join(dir, "cache");
  makeCache(cache, paths);
  const manifestFile = join(dir, "cache.manifest");
  await signFileCache({ cacheDir: cache, hosts: { "web-1": system }, output: manifestFile, signingKey: signer.secret, sequence: 9 });
  const tarball = join(dir, "cache.tar");
  tar(cache, tarball);
  return { dir, cache, tarball, manifestFile, paths };
}

async function check(tarball: string, manifestFile: string): Promise<Awaited<ReturnType<typeof verifyBundle>>> {
  const assembled = await openCacheTarBundle(tarball, manifestFile);
  let bytes = 0;
  async function* counted(): AsyncGenerator<Buffer> {
    for await (const chunk of assembled.chunks()) {
      bytes += chunk.length;
      yield chunk;
    }
  }
  const verified = await verifyBundle(counted(), { trustedKeys: [key.publicKey] });
  assert.equal(bytes, assembled.size, "the announced size is the size streamed");
  return verified;
}

async function refused(tarball: string, manifestFile: string, code: ErrorCode, message?: RegExp): Promise<void> {
  await assert.rejects(check(tarball, manifestFile), (error: unknown) => {
    assert.ok(error instanceof FerryError, String(error));
    assert.equal(error.code, code, error.message);
    if (message) assert.match(error.message, message);
    return true;
  });
}

describe("file cache tarball with a detached signed manifest", { skip: spawnSync("tar", ["--version"]).status !== 0 ? "no tar" : false }, () => {
  test("a tarball made by tar -C DIR -cf FILE . verifies against its manifest, as a bundle would", async () => {
    const { tarball, manifestFile, paths } = await site();
    const verified = await check(tarball, manifestFile);
    assert.equal(verified.signer, key.secret.name);
    assert.deepEqual(verified.manifest.paths.map((path) => path.storePath).sort(), paths.map((path) => path.storePath).sort());
  });

  test("the manifest file alone is not a bundle, and says how to use it", async () => {
    const { manifestFile } = await site();
    await assert.rejects(
      verifyBundle(chunks(readFileSync(manifestFile)), { trustedKeys: [key.publicKey] }),
      (error: unknown) => (error as FerryError).code === "E_BUNDLE_FORMAT" && /--manifest-file/.test((error as Error).message),
    );
  });

  test("a flipped NAR byte, a NAR of another size, a missing NAR and an unlisted file are refused", async () => {
    const { dir, cache, tarball, manifestFile, paths } = await site();
    const bytes = readFileSync(tarball);
    const system = paths[1] as FakePath;
    const narinfo = readFileSync(join(cache, `${system.storePath.slice(11, 43)}.narinfo`), "utf8");
    const url = /^URL: (.*)$/m.exec(narinfo)?.[1] as string;
    const nar = readFileSync(join(cache, url));
    const at = bytes.indexOf(nar.subarray(0, 64));
    const flipped = Buffer.from(bytes);
    flipped[at + 1000] = (flipped[at + 1000] as number) ^ 1;
    writeFileSync(join(dir, "flipped.tar"), flipped);
    await refused(join(dir, "flipped.tar"), manifestFile, "E_BUNDLE_TAMPERED", /does not match the SHA-256/);

    writeFileSync(join(cache, url), nar.subarray(0, nar.length - 1));
    tar(cache, join(dir, "short.tar"));
    await refused(join(dir, "short.tar"), manifestFile, "E_BUNDLE_TAMPERED", /the manifest says/);

    rmSync(join(cache, url));
    tar(cache, join(dir, "missing.tar"));
    await refused(join(dir, "missing.tar"), manifestFile, "E_BUNDLE_INCOMPLETE", /lacks nar\//);

    writeFileSync(join(cache, url), nar);
    writeFileSync(join(cache, "nar", "extra.nar"), "not listed");
    tar(cache, join(dir, "extra.tar"));
    await refused(join(dir, "extra.tar"), manifestFile, "E_BUNDLE_TAMPERED", /does not list: nar\/extra\.nar/);
  });

  test("a truncated tarball, a tarball that is no tar, and a symlink inside are refused", async () => {
    const { dir, cache, tarball, manifestFile } = await site();
    const bytes = readFileSync(tarball);
    writeFileSync(join(dir, "cut.tar"), bytes.subarray(0, Math.floor(bytes.length / 2)));
    await assert.rejects(check(join(dir, "cut.tar"), manifestFile), (error: unknown) =>
      ["E_BUNDLE_TRUNCATED", "E_BUNDLE_FORMAT"].includes((error as FerryError).code),
    );
    writeFileSync(join(dir, "junk.tar"), Buffer.alloc(4096, 7));
    await refused(join(dir, "junk.tar"), manifestFile, "E_BUNDLE_FORMAT", /not a tar archive/);
    spawnSync("ln", ["-s", "/etc/passwd", join(cache, "link")]);
    tar(cache, join(dir, "link.tar"));
    await refused(join(dir, "link.tar"), manifestFile, "E_BUNDLE_FORMAT", /tar type "2"/);
  });

  test("a manifest signed by an untrusted key, or altered, is refused", async () => {
    const other = await site(intruder);
    await refused(other.tarball, other.manifestFile, "E_BUNDLE_SIGNATURE");
    const { dir, tarball, manifestFile } = await site();
    const text = readFileSync(manifestFile);
    const at = text.indexOf(Buffer.from('"sequence": 9'));
    const altered = Buffer.from(text);
    altered.write('"sequence": 8', at);
    writeFileSync(join(dir, "altered.manifest"), altered);
    // The tar header checksum does not cover the body: only the signature catches it.
    await refused(tarball, join(dir, "altered.manifest"), "E_BUNDLE_SIGNATURE");
    writeFileSync(join(dir, "not-a-manifest"), "hello");
    await refused(tarball, join(dir, "not-a-manifest"), "E_BUNDLE_TRUNCATED");
  });
});
