// Bundles from a `nix-store --export` stream: the stream is made here in the
// format Nix writes (the e2e bundle test uses one Nix made), wrapped by the
// real writer with the real zstd, and read back by the real verifier; every
// damaged stream is refused with a clear error and leaves no file behind.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EXPORT_MAGIC, FerryError, ProcessRunner, createBundleFromExport, scanExport, toNixBase32, verifyBundle, type ErrorCode } from "@ferry/core";
import { chunks, fakeStorePath, makeKey } from "./bundle-helpers.js";

const key = makeKey("site-deploy-1");
const root = mkdtempSync(join(tmpdir(), "ferry-bundle-export-"));
after(() => rmSync(root, { recursive: true, force: true }));

function u64(value: number | bigint): Buffer {
  const buffer = Buffer.alloc(8);
  buffer.writeBigUInt64LE(BigInt(value));
  return buffer;
}

function str(value: string | Buffer): Buffer {
  const bytes = typeof value === "string" ? Buffer.from(value) : value;
  return Buffer.concat([u64(bytes.length), bytes, Buffer.alloc((8 - (bytes.length % 8)) % 8)]);
}

type Node = { file: Buffer; executable?: boolean } | { link: string } | { dir: Record<string, Node> };

function narNode(node: Node): Buffer {
  if ("file" in node)
    return Buffer.concat([
      str("("),
      str("type"),
      str("regular"),
      ...(node.executable ? [str("executable"), str("")] : []),
      str("contents"),
      str(node.file),
      str(")"),
    ]);
  if ("link" in node) return Buffer.concat([str("("), str("type"), str("symlink"), str("target"), str(node.link), str(")")]);
  const names = Object.keys(node.dir).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return Buffer.concat([
    str("("),
    str("type"),
    str("directory"),
    ...names.flatMap((name) => [str("entry"), str("("), str("name"), str(name), str("node"), narNode(node.dir[name] as Node), str(")")]),
    str(")"),
  ]);
}

function nar(node: Node): Buffer {
  return Buffer.concat([str("nix-archive-1"), narNode(node)]);
}

interface ExportPath {
  storePath: string;
  nar: Buffer;
  references: string[];
}

function exportEntry(path: ExportPath, magic = EXPORT_MAGIC): Buffer {
  return Buffer.concat([u64(1), path.nar, u64(magic), str(path.storePath), u64(path.references.length), ...path.references.map(str), str(""), u64(0)]);
}

function exportStream(paths: readonly ExportPath[]): Buffer {
  return Buffer.concat([...paths.map((path) => exportEntry(path)), u64(0)]);
}

/** A system referring to a library (with a big incompressible file) and itself, as Nix orders them (dependencies first). */
function closure(): { paths: ExportPath[]; system: string } {
  const lib = fakeStorePath("lib");
  const system = fakeStorePath("nixos-system-web-1");
  const libNar = nar({
    dir: { "libfoo.so": { file: randomBytes(300_000) }, README: { file: Buffer.from("text ".repeat(1000)) }, link: { link: "libfoo.so" } },
  });
  const systemNar = nar({ dir: { bin: { dir: { "switch-to-configuration": { file: Buffer.from("#!/bin/sh\n"), executable: true } } }, lib: { link: lib } } });
  return {
    system,
    paths: [
      { storePath: lib, nar: libNar, references: [lib] },
      { storePath: system, nar: systemNar, references: [lib, system] },
    ],
  };
}

let counter = 0;
async function wrap(
  bytes: Buffer | AsyncIterable<Buffer>,
  hosts: Record<string, string>,
): Promise<{ dir: string; output: string; result: Awaited<ReturnType<typeof createBundleFromExport>> }> {
  const dir = mkdtempSync(join(root, `c${counter++}-`));
  const output = join(dir, "site.ferry");
  let source: string | AsyncIterable<Buffer> = bytes as AsyncIterable<Buffer>;
  if (Buffer.isBuffer(bytes)) {
    source = join(dir, "closure.export");
    writeFileSync(source, bytes);
  }
  const result = await createBundleFromExport({ hosts, output, signingKey: key.secret, runner: new ProcessRunner(), exportSource: source, sequence: 5 });
  return { dir, output, result };
}

async function refused(bytes: Buffer, hosts: Record<string, string>, code: ErrorCode, message?: RegExp): Promise<void> {
  const dir = mkdtempSync(join(root, `r${counter++}-`));
  const source = join(dir, "closure.export");
  writeFileSync(source, bytes);
  await assert.rejects(
    createBundleFromExport({ hosts, output: join(dir, "site.ferry"), signingKey: key.secret, runner: new ProcessRunner(), exportSource: source }),
    (error: unknown) => {
      assert.ok(error instanceof FerryError, String(error));
      assert.equal(error.code, code, error.message);
      if (message) assert.match(error.message, message);
      return true;
    },
  );
  assert.deepEqual(readdirSync(dir), ["closure.export"], "nothing written beside the export");
}

describe("bundle from a nix-store --export stream", () => {
  test("round trip: the bundle verifies, and its signed NAR hashes are the hashes of the exported NARs", async () => {
    const { paths, system } = closure();
    const { output, result } = await wrap(exportStream(paths), { "web-1": system });
    const verified = await verifyBundle(chunks(await readFile(output), 1 << 16), { trustedKeys: [key.publicKey] });
    assert.equal(verified.manifest.version, 2);
    assert.deepEqual(verified.manifest.hosts, { "web-1": system });
    assert.equal(result.manifest.paths.length, 2);
    for (const path of paths) {
      const entry = verified.manifest.paths.find((item) => item.storePath === path.storePath);
      assert.ok(entry, path.storePath);
      assert.equal(entry.narHash, `sha256:${toNixBase32(createHash("sha256").update(path.nar).digest())}`);
      assert.equal(entry.narSize, path.nar.length);
    }
  });

  test("standard input is read once into a file beside the output, removed afterwards", async () => {
    const { paths, system } = closure();
    const { dir, result } = await wrap(chunks(exportStream(paths), 4096), { "web-1": system });
    assert.equal(result.manifest.paths.length, 2);
    assert.deepEqual(readdirSync(dir), ["site.ferry"]);
  });

  test("paths the hosts do not need are left out; a delta --since hashes what it omits", async () => {
    const { paths, system } = closure();
    const stray: ExportPath = { storePath: fakeStorePath("stray"), nar: nar({ file: Buffer.from("x") }), references: [] };
    const lib = paths[0] as ExportPath;
    const dir = mkdtempSync(join(root, "since-"));
    writeFileSync(join(dir, "e"), exportStream([stray, ...paths]));
    const { manifest } = await createBundleFromExport({
      hosts: { "web-1": system },
      output: join(dir, "b"),
      signingKey: key.secret,
      runner: new ProcessRunner(),
      exportSource: join(dir, "e"),
      since: { format: "ferry-site-inventory", version: 1, createdAt: "", lastSequence: 3, storePaths: [lib.storePath], sha256: "0".repeat(64) },
    });
    assert.deepEqual(
      manifest.paths.map((path) => path.storePath),
      [system],
    );
    assert.deepEqual(manifest.omitted, [
      { storePath: lib.storePath, narHash: `sha256:${toNixBase32(createHash("sha256").update(lib.nar).digest())}`, narSize: lib.nar.length },
    ]);
  });

  test("a host's system or a reference missing from the export is refused with E_EXPORT_INCOMPLETE", async () => {
    const { paths, system } = closure();
    await refused(exportStream(paths), { "web-1": system, "web-2": fakeStorePath("nixos-system-web-2") }, "E_EXPORT_INCOMPLETE", /system of web-2/);
    await refused(exportStream(paths.slice(1)), { "web-1": system }, "E_EXPORT_INCOMPLETE", /-lib, which the hosts' closures need/);
  });

  test("truncated exports are refused at every cut, naming where", async () => {
    const { paths, system } = closure();
    const whole = exportStream(paths);
    for (const cut of [0, 7, 8, 30, 200, 150_000, whole.length - 9, whole.length - 8, whole.length - 1]) {
      await refused(whole.subarray(0, cut), { "web-1": system }, "E_EXPORT_MALFORMED", /ends in the middle|runs past its end|declares \d+ bytes/);
    }
  });

  test("bad magic, bad markers, trailing bytes and a repeated path are refused", async () => {
    const { paths, system } = closure();
    const [lib, sys] = paths as [ExportPath, ExportPath];
    await refused(Buffer.concat([exportEntry(lib, 0x12345678), exportEntry(sys), u64(0)]), { "web-1": system }, "E_EXPORT_MALFORMED", /export magic/);
    await refused(Buffer.concat([u64(2), exportStream(paths).subarray(8)]), { "web-1": system }, "E_EXPORT_MALFORMED", /not a nix-store --export stream/);
    await refused(Buffer.concat([exportStream(paths), Buffer.from("junk")]), { "web-1": system }, "E_EXPORT_MALFORMED", /after the end/);
    await refused(Buffer.concat([exportEntry(lib), exportEntry(lib), exportEntry(sys), u64(0)]), { "web-1": system }, "E_EXPORT_MALFORMED", /twice/);
    await refused(Buffer.from("this is a tar file, not an export, honestly"), { "web-1": system }, "E_EXPORT_MALFORMED");
  });

  test("a NAR whose declared file length lies is refused, longer or shorter", async () => {
    const { paths, system } = closure();
    const [lib, sys] = paths as [ExportPath, ExportPath];
    const contents = Buffer.from("hello, world");
    const honest = nar({ file: contents });
    const at = honest.indexOf(u64(contents.length), 0);
    for (const lie of [contents.length + 8, contents.length - 8, 2 ** 40, 2 ** 62]) {
      const lying = Buffer.from(honest);
      lying.writeBigUInt64LE(BigInt(lie), at);
      await refused(exportStream([lib, { ...sys, nar: lying }]), { "web-1": system }, "E_EXPORT_MALFORMED");
    }
    // Entry names: out of order, with a slash, or "..".
    for (const dir of [{ b: { file: contents }, a: { file: contents } }, { "a/b": { file: contents } }, { "..": { file: contents } }]) {
      const bad = Buffer.concat([
        str("nix-archive-1"),
        str("("),
        str("type"),
        str("directory"),
        ...Object.entries(dir).flatMap(([name, node]) => [str("entry"), str("("), str("name"), str(name), str("node"), narNode(node), str(")")]),
        str(")"),
      ]);
      await refused(exportStream([lib, { ...sys, nar: bad }]), { "web-1": system }, "E_EXPORT_MALFORMED", /entry/);
    }
  });

  test("maximal and oversized path names: 211 characters wrap, longer ones and absurd lengths are refused without allocating", async () => {
    const long = `/nix/store/${toNixBase32(randomBytes(20))}-${"n".repeat(211)}`;
    const ok = await wrap(exportStream([{ storePath: long, nar: nar({ file: Buffer.from("x") }), references: [] }]), { "web-1": long });
    assert.deepEqual(
      ok.result.manifest.paths.map((path) => path.storePath),
      [long],
    );
    const tooLong = `${long}n`;
    const entry = exportEntry({ storePath: long, nar: nar({ file: Buffer.from("x") }), references: [] });
    const oversized = Buffer.concat([exportEntry({ storePath: tooLong, nar: nar({ file: Buffer.from("x") }), references: [] }), u64(0)]);
    await refused(oversized, { "web-1": long }, "E_EXPORT_MALFORMED", /at most 255/);
    // The path's length field claims 2^53 - 1 bytes.
    const lengthAt = entry.indexOf(u64(EXPORT_MAGIC)) + 8;
    const absurd = Buffer.from(entry);
    absurd.writeBigUInt64LE(BigInt(Number.MAX_SAFE_INTEGER), lengthAt);
    await refused(Buffer.concat([absurd, u64(0)]), { "web-1": long }, "E_EXPORT_MALFORMED", /declares \d+ bytes; at most 255/);
    absurd.writeBigUInt64LE(2n ** 64n - 1n, lengthAt);
    await refused(Buffer.concat([absurd, u64(0)]), { "web-1": long }, "E_EXPORT_MALFORMED", /not a plausible/);
    // A reference count no export can hold.
    const counted = Buffer.from(entry);
    counted.writeBigUInt64LE(10n ** 9n, lengthAt + 8 + 256);
    await refused(Buffer.concat([counted, u64(0)]), { "web-1": long }, "E_EXPORT_MALFORMED", /references; at most/);
  });

  test("the scan skips file contents: only the structure is read", async () => {
    const dir = mkdtempSync(join(root, "scan-"));
    const big = { storePath: fakeStorePath("big"), nar: nar({ file: Buffer.alloc(8 << 20) }), references: [] };
    writeFileSync(join(dir, "e"), exportStream([big]));
    const [entry] = await scanExport(join(dir, "e"));
    assert.equal(entry?.narSize, big.nar.length);
    assert.equal(entry?.narOffset, 8);
  });
});
