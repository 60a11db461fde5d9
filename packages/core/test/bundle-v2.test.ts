// Version 2 bundles (written in one pass from the store, manifest last): a
// fake streaming runner stands in for `nix-store --dump` and zstd (identity),
// the real writer and reader do the rest. The e2e bundle test runs them with
// real Nix and zstd.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import {
  FerryError,
  MANIFEST_FILE,
  SIGNATURE_FILE,
  STREAMED_MARKER_FILE,
  COMPRESS_MIN_NAR_SIZE,
  INCOMPRESSIBLE_ENTROPY,
  byteEntropy,
  HEAD_FILE,
  HEAD_SIGNATURE_FILE,
  TarReader,
  dumpNar,
  parseNarInfo,
  readBundleManifest,
  signManifest,
  toNixBase32,
  verifyBundle,
  writeStreamedBundle,
  type BundleProgress,
  type CommandResult,
  type CommandSpec,
  type ErrorCode,
  type StorePathInfo,
  type StreamingCommand,
  type StreamingRunner,
} from "@ferry/core";
import { chunks, fakeStorePath, makeBundle, makeKey } from "./bundle-helpers.js";

const key = makeKey("site-deploy-1");
const scratch = mkdtempSync(join(tmpdir(), "ferry-bundle-v2-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** The NAR source yields the path's bytes; `zstd` passes its input through unchanged. */
class FakeStore implements StreamingRunner {
  readonly dumped: string[] = [];
  constructor(readonly nars: Map<string, Buffer>) {}

  run(spec: CommandSpec): Promise<CommandResult> {
    return Promise.reject(new Error(`unexpected ${spec.argv.join(" ")}`));
  }

  async *dump(path: string): AsyncGenerator<Buffer> {
    this.dumped.push(path);
    const nar = this.nars.get(path);
    if (!nar) throw new Error(`ENOENT: ${path}`);
    for (let offset = 0; offset < nar.length; offset += 1 << 20) yield nar.subarray(offset, offset + (1 << 20));
  }

  stream(spec: Omit<CommandSpec, "input" | "inheritStdio" | "stdoutLimit" | "onSpawn">): StreamingCommand {
    const [program] = spec.argv;
    if (program === "zstd" && spec.purpose === "compress") {
      const pipe = new PassThrough();
      return { stdin: pipe, stdout: pipe, done: new Promise((resolve) => pipe.on("end", resolve)), kill: () => undefined };
    }
    throw new Error(`unexpected ${spec.argv.join(" ")}`);
  }
}

interface Closure {
  infos: StorePathInfo[];
  store: FakeStore;
  system: string;
}

/** Text-like bytes zstd would shrink (entropy about 4.7 bits per byte). */
function compressibleBytes(size: number): Buffer {
  const words = ["store ", "path ", "closure ", "nix ", "ferry ", "bundle ", "hash ", "\n"];
  const out = Buffer.alloc(size);
  const pick = randomBytes(size);
  for (let i = 0; i < size;) {
    const word = words[(pick[i] as number) % words.length] as string;
    i += out.write(word, i);
  }
  return out;
}

function closure(sizes = [3000, 5 << 20, 1024], compressible: number[] = []): Closure {
  const lib = fakeStorePath("lib");
  const data = fakeStorePath("data");
  const system = fakeStorePath("nixos-system-web-1");
  const nars = new Map<string, Buffer>();
  const refs: Record<string, string[]> = { [lib]: [lib], [data]: [], [system]: [lib, data] };
  const infos = [system, lib, data].map((path, index): StorePathInfo => {
    const nar = compressible.includes(index) ? compressibleBytes(sizes[index] as number) : randomBytes(sizes[index] as number);
    nars.set(path, nar);
    return { path, narHash: `sha256:${toNixBase32(createHash("sha256").update(nar).digest())}`, narSize: nar.length, references: refs[path] as string[] };
  });
  return { infos, store: new FakeStore(nars), system };
}

async function write(c: Closure, name: string, sequence = 9, onProgress?: BundleProgress): Promise<Buffer> {
  const output = join(scratch, name);
  await writeStreamedBundle({
    runner: c.store,
    narSource: (path) => c.store.dump(path),
    paths: c.infos,
    omitted: [],
    hosts: { "web-1": c.system },
    sequence,
    since: null,
    signingKey: key.secret,
    output,
    now: new Date("2026-11-22T04:00:00.000Z"),
    ...(onProgress ? { onProgress } : {}),
  });
  return readFileSync(output);
}

async function refused(bytes: Buffer, codes: ErrorCode[], pattern?: RegExp): Promise<void> {
  await assert.rejects(verifyBundle(chunks(bytes, 65536), { trustedKeys: [key.publicKey] }), (error: unknown) => {
    assert.ok(error instanceof FerryError, String(error));
    assert.ok(codes.includes(error.code), `expected ${codes.join("|")}, got ${error.code}: ${error.message}`);
    if (pattern) assert.match(error.message, pattern);
    return true;
  });
}

async function names(bytes: Buffer): Promise<{ name: string; header: number; data: number; size: number }[]> {
  const reader = new TarReader(chunks(bytes, 65536));
  const out = [];
  for (let entry = await reader.next(); entry; entry = await reader.next()) {
    out.push({ name: entry.name, header: reader.offset - 512, data: reader.offset, size: entry.size });
    await reader.skip();
  }
  return out;
}

describe("bundle format version 2 (streamed, manifest last)", () => {
  test("round trip: files first in dependency order, manifest and signature last; every file verified and handed to the sink", async () => {
    const c = closure([3000, 5 << 20, 1024], [1]);
    const bytes = await write(c, "round.ferry");
    const entries = (await names(bytes)).map((entry) => entry.name);
    assert.deepEqual(entries.slice(0, 4), [STREAMED_MARKER_FILE, HEAD_FILE, HEAD_SIGNATURE_FILE, "nix-cache-info"]);
    assert.deepEqual(entries.slice(-2), [MANIFEST_FILE, SIGNATURE_FILE]);
    const sunk: string[] = [];
    const verified = await verifyBundle(chunks(bytes, 65536), {
      trustedKeys: [key.publicKey],
      sink: async (name, _size, body) => {
        for await (const _chunk of body) void _chunk;
        sunk.push(name);
      },
    });
    assert.equal(verified.manifest.version, 2);
    assert.deepEqual(sunk, entries.slice(3, -2));
    // Dependencies first: the system, which refers to both, comes last.
    const order = verified.manifest.paths.map((path) => path.storePath);
    assert.equal(order.length, 3);
    assert.equal(order[2], c.system);
    for (const path of verified.manifest.paths) {
      const info = c.infos.find((candidate) => candidate.path === path.storePath) as StorePathInfo;
      assert.equal(path.narHash, info.narHash, "the NAR hash computed while streaming is Nix's");
      // Only the large text-like NAR pays for a zstd process; the small ones never do.
      const lib = c.infos[1] as StorePathInfo;
      assert.match(path.nar.file, path.storePath === lib.path ? /^nar\/[0-9a-z]{52}\.nar\.zst$/ : /^nar\/[0-9a-z]{52}\.nar$/);
    }
    // Each path was read from the store once.
    assert.equal(c.store.dumped.length, 3);
    const head = await readBundleManifest(new TarReader(chunks(bytes)));
    assert.deepEqual(head.manifestBytes, verified.manifestBytes);
  });

  test("its narinfos are what a Nix file cache holds: URL, compression, FileHash/FileSize of the stored file, our signature", async () => {
    const c = closure([10, 200_000, 30]);
    const bytes = await write(c, "narinfo.ferry");
    const reader = new TarReader(chunks(bytes));
    const files = new Map<string, Buffer>();
    for (let entry = await reader.next(); entry; entry = await reader.next()) files.set(entry.name, await reader.readAll(1 << 24));
    const narinfos = [...files].filter(([name]) => name.endsWith(".narinfo"));
    assert.equal(narinfos.length, 3);
    for (const [, text] of narinfos) {
      const info = parseNarInfo(text.toString("utf8"));
      // Random bytes: none of them is worth compressing.
      assert.equal(info.compression, "none");
      const nar = files.get(info.url) as Buffer;
      assert.equal(info.fileSize, nar.length);
      assert.match(text.toString("utf8"), new RegExp(`FileHash: sha256:${toNixBase32(createHash("sha256").update(nar).digest())}\\n`));
      assert.ok(info.sigs.some((sig) => sig.startsWith("site-deploy-1:")));
    }
  });

  test("each NAR is compressed only where it pays: small or incompressible NARs start no zstd", async () => {
    const c = closure([COMPRESS_MIN_NAR_SIZE - 1, 3 << 20, 300_000], [2]);
    let spawned = 0;
    const stream = c.store.stream.bind(c.store);
    c.store.stream = (spec) => {
      spawned += 1;
      return stream(spec);
    };
    const bytes = await write(c, "decide.ferry");
    const verified = await verifyBundle(chunks(bytes, 65536), { trustedKeys: [key.publicKey] });
    const compressed = verified.manifest.paths.filter((path) => path.nar.file.endsWith(".nar.zst")).map((path) => path.storePath);
    assert.deepEqual(compressed, [(c.infos[2] as StorePathInfo).path], "only the large text-like NAR");
    assert.equal(spawned, 1);
    assert.ok(byteEntropy([randomBytes(1 << 17)]) > INCOMPRESSIBLE_ENTROPY);
    assert.ok(byteEntropy([compressibleBytes(1 << 17)]) < INCOMPRESSIBLE_ENTROPY);
  });

  test("progress: NAR bytes read from the store, never back, up to the closure's NAR size", async () => {
    const c = closure();
    const reports: { bytes: number; totalBytes: number }[] = [];
    await write(c, "progress.ferry", 9, (done) => reports.push(done));
    const total = c.infos.reduce((sum, info) => sum + info.narSize, 0);
    assert.ok(reports.length >= 2);
    assert.ok(reports.every((report) => report.totalBytes === total));
    assert.ok(reports.every((report, i) => i === 0 || report.bytes >= (reports[i - 1] as { bytes: number }).bytes));
    assert.equal(reports.at(-1)?.bytes, total);
  });

  test("tar(1) lists it", { skip: spawnSync("tar", ["--version"]).status !== 0 ? "no tar" : false }, async () => {
    await write(closure([100, 2000, 300]), "tar.ferry");
    const listed = spawnSync("tar", ["-tf", join(scratch, "tar.ferry")], { encoding: "utf8" });
    assert.equal(listed.status, 0, listed.stderr);
    assert.equal(listed.stdout.trim().split("\n").length, 12);
  });

  test("the same reader still takes version 1 bundles", async () => {
    const v1 = await makeBundle(key);
    const verified = await verifyBundle(chunks(v1.bytes), { trustedKeys: [key.publicKey] });
    assert.equal(verified.manifest.version, 1);
    const head = await readBundleManifest(new TarReader(chunks(v1.bytes)));
    assert.deepEqual(head.manifestBytes, verified.manifestBytes);
  });

  test("truncation anywhere is refused", async () => {
    const bytes = await write(closure([3000, 300_000, 1024]), "cut.ferry");
    for (let i = 0; i < 40; i++) {
      const cut = Math.floor((bytes.length * i) / 40);
      await refused(bytes.subarray(0, cut), ["E_BUNDLE_TRUNCATED"]);
    }
    await refused(bytes.subarray(0, bytes.length - 1025), ["E_BUNDLE_TRUNCATED"]);
  });

  test("a flipped byte anywhere is refused with a bundle error", async () => {
    const bytes = await write(closure([3000, 300_000, 1024]), "flip.ferry");
    const offsets = new Set<number>();
    for (let i = 0; i < 60; i++) offsets.add(Math.floor((bytes.length * i) / 60));
    for (const entry of await names(bytes)) [entry.header, entry.header + 130, entry.data, entry.data + entry.size - 1].forEach((o) => offsets.add(o));
    for (const offset of offsets) {
      const copy = Buffer.from(bytes);
      copy[offset] = (copy[offset] as number) ^ 0x20;
      await refused(copy, ["E_BUNDLE_TAMPERED", "E_BUNDLE_SIGNATURE", "E_BUNDLE_FORMAT", "E_BUNDLE_TRUNCATED"]);
    }
  });

  test("a NAR changed in place (same size) is caught by its hash, a manifest from another bundle by the file list", async () => {
    const c = closure([3000, 300_000, 1024]);
    const bytes = await write(c, "a.ferry");
    const entries = await names(bytes);
    const nar = entries.find((entry) => entry.name.startsWith("nar/") && entry.size > 100_000) as (typeof entries)[0];
    const copy = Buffer.from(bytes);
    copy[nar.data + 1000] = (copy[nar.data + 1000] as number) ^ 1;
    await refused(copy, ["E_BUNDLE_TAMPERED"], /does not match the SHA-256/);
    // The files of one bundle under the (validly signed) manifest of another.
    const other = await write(closure([3000, 300_000, 1024]), "b.ferry", 10);
    const otherEntries = await names(other);
    const manifestAt = (list: typeof entries) => (list.find((entry) => entry.name === MANIFEST_FILE) as (typeof entries)[0]).header;
    const spliced = Buffer.concat([bytes.subarray(0, manifestAt(entries)), other.subarray(manifestAt(otherEntries))]);
    await refused(spliced, ["E_BUNDLE_TAMPERED"], /disagrees with the bundle's signed head/);
  });

  test("an untrusted signer is refused by the signed head, before any file reaches the sink", async () => {
    const bytes = await write(closure([10, 10, 10]), "untrusted.ferry");
    let sunk = 0;
    await assert.rejects(
      verifyBundle(chunks(bytes), {
        trustedKeys: [makeKey("intruder-1").publicKey],
        sink: async () => {
          sunk += 1;
        },
      }),
      (error: unknown) => {
        assert.equal((error as FerryError).code, "E_BUNDLE_SIGNATURE");
        return true;
      },
    );
    assert.equal(sunk, 0);
  });

  test("a manifest signature is not a head signature, nor the reverse: each carries its own domain", async () => {
    const c = closure([3000, 70_000, 1024]);
    const bytes = await write(c, "domains.ferry");
    const entries = await names(bytes);
    const body = (name: string): { data: number; size: number } => entries.find((entry) => entry.name === name) as { data: number; size: number };
    const resign = (name: string, signedName: string, document: "manifest" | "head"): Buffer => {
      const signed = body(signedName);
      const signature = Buffer.from(signManifest(bytes.subarray(signed.data, signed.data + signed.size), [key.secret], document));
      const target = body(name);
      assert.equal(signature.length, target.size);
      const copy = Buffer.from(bytes);
      signature.copy(copy, target.data);
      return copy;
    };
    // The head signed as if it were a manifest: what a replayed manifest.sig over the same bytes would be.
    await refused(resign(HEAD_SIGNATURE_FILE, HEAD_FILE, "manifest"), ["E_BUNDLE_SIGNATURE"], /head is not signed/);
    await refused(resign(SIGNATURE_FILE, MANIFEST_FILE, "head"), ["E_BUNDLE_SIGNATURE"], /manifest is not signed/);
    // Re-signed in the right domains, the same bytes pass: the test changes nothing else.
    await verifyBundle(chunks(resign(HEAD_SIGNATURE_FILE, HEAD_FILE, "head"), 65536), { trustedKeys: [key.publicKey] });
  });

  test("files the signed head did not announce, or more NAR data than it allows, are refused before they are staged", async () => {
    // Another bundle's files under this bundle's head: the first narinfo is not announced.
    const a = await write(closure([3000, 300_000, 1024]), "head-a.ferry");
    const b = await write(closure([3000, 300_000, 1024]), "head-b.ferry", 10);
    const aEntries = await names(a);
    const bEntries = await names(b);
    const at = (list: typeof aEntries, name: string) => (list.find((entry) => entry.name === name) as (typeof aEntries)[0]).header;
    const mixed = Buffer.concat([a.subarray(0, at(aEntries, "nix-cache-info")), b.subarray(at(bEntries, "nix-cache-info"))]);
    const staged: string[] = [];
    await assert.rejects(
      verifyBundle(chunks(mixed), {
        trustedKeys: [key.publicKey],
        sink: async (name, _size, body) => {
          for await (const _chunk of body) void _chunk;
          staged.push(name);
        },
      }),
      (error: unknown) => (error as FerryError).code === "E_BUNDLE_TAMPERED" && /not a path the signed head announced/.test((error as FerryError).message),
    );
    assert.ok(
      staged.every((name) => !name.endsWith(".narinfo")),
      `staged ${staged.join(", ")}`,
    );
    // A head announcing tiny paths in front of big NARs.
    const small = closure([10, 10, 10]);
    const big = closure([3000, 300_000, 1024]);
    const smallBytes = await write(small, "head-small.ferry");
    const bigBytes = await write(big, "head-big.ferry");
    const sEntries = await names(smallBytes);
    const gEntries = await names(bigBytes);
    const swapped = Buffer.concat([smallBytes.subarray(0, at(sEntries, "nix-cache-info")), bigBytes.subarray(at(gEntries, "nix-cache-info"))]);
    await refused(swapped, ["E_BUNDLE_TAMPERED"], /more NAR data than its signed head announced|not a path the signed head announced/);
  });

  test("a store path whose dump does not match its recorded NAR hash fails the write and leaves no file", async () => {
    const c = closure([100, 200, 300]);
    (c.infos[1] as StorePathInfo).narHash = `sha256:${toNixBase32(randomBytes(32))}`;
    await assert.rejects(write(c, "corrupt.ferry"), (error: unknown) => (error as FerryError).code === "E_STORE_PATH_CORRUPT");
    assert.equal(existsSync(join(scratch, "corrupt.ferry")), false);
    assert.equal(existsSync(join(scratch, "corrupt.ferry.partial")), false);
  });

  test("a failing dump fails the write", async () => {
    const c = closure([100, 200, 300]);
    c.store.nars.delete(c.system);
    await assert.rejects(write(c, "gone.ferry"), (error: unknown) => (error as FerryError).code === "E_COMMAND_FAILED");
  });
});

describe("dumpNar", () => {
  const nix = spawnSync("nix-store", ["--version"]).status === 0 && process.getuid?.() === 0;
  test("serialises a store path byte for byte as nix-store --dump does", { skip: nix ? false : "needs nix-store as root" }, async () => {
    const dir = join(scratch, "tree");
    mkdirSync(join(dir, "sub", "deeper"), { recursive: true });
    writeFileSync(join(dir, "plain"), "text\n");
    writeFileSync(join(dir, "empty"), "");
    writeFileSync(join(dir, "odd"), randomBytes(1_500_001));
    writeFileSync(join(dir, "sub", "tool"), "#!/bin/sh\n", { mode: 0o755 });
    writeFileSync(join(dir, "sub", "deeper", "B"), "b");
    writeFileSync(join(dir, "sub", "deeper", "a"), "a");
    symlinkSync("../plain", join(dir, "sub", "link"));
    const storePath = spawnSync("nix-store", ["--add", dir], { encoding: "utf8" }).stdout.trim();
    assert.match(storePath, /^\/nix\/store\//);
    const expected = spawnSync("nix-store", ["--dump", storePath], { maxBuffer: 1 << 26 }).stdout;
    const ours: Buffer[] = [];
    for await (const chunk of dumpNar(storePath)) ours.push(chunk);
    assert.ok(Buffer.concat(ours).equals(expected));
  });
});
