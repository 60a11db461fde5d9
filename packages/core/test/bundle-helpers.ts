// Builds bundles without Nix: fake store paths whose "NARs" are random bytes
// in a file binary cache layout, packed by the real writer.
import { createHash, generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseSecretKey, toNixBase32, writeBundle, type BundleManifest, type BundleProgress, type OmittedPath, type SigningKey } from "@ferry/core";

let root: string | undefined;

/** One scratch directory per test file; removeScratch() deletes it. */
function scratch(): string {
  root ??= mkdtempSync(join(tmpdir(), "ferry-bundle-test-"));
  return mkdtempSync(join(root, "b-"));
}

export function removeScratch(): void {
  if (root) rmSync(root, { recursive: true, force: true });
  root = undefined;
}

export interface TestKey {
  secret: SigningKey;
  secretText: string;
  publicKey: string;
}

export function makeKey(name: string): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const d = Buffer.from(privateKey.export({ format: "jwk" }).d as string, "base64url");
  const x = Buffer.from(publicKey.export({ format: "jwk" }).x as string, "base64url");
  const secretText = `${name}:${Buffer.concat([d, x]).toString("base64")}`;
  return { secret: parseSecretKey(secretText), secretText, publicKey: `${name}:${x.toString("base64")}` };
}

export function fakeStorePath(name: string): string {
  return `/nix/store/${toNixBase32(randomBytes(20))}-${name}`;
}

export interface FakePath {
  storePath: string;
  references: string[];
  size: number;
  /** Extra narinfo lines, e.g. a forged Sig. */
  extra?: string;
}

/** Writes narinfos and NARs as `nix copy --to file://DIR?compression=zstd` would. */
export function makeCache(dir: string, paths: readonly FakePath[]): void {
  mkdirSync(join(dir, "nar"), { recursive: true });
  for (const path of paths) {
    const nar = randomBytes(path.size);
    const fileHash = toNixBase32(createHash("sha256").update(nar).digest());
    writeFileSync(join(dir, "nar", `${fileHash}.nar.zst`), nar);
    const narinfo = [
      `StorePath: ${path.storePath}`,
      `URL: nar/${fileHash}.nar.zst`,
      "Compression: zstd",
      `FileHash: sha256:${fileHash}`,
      `FileSize: ${nar.length}`,
      `NarHash: sha256:${toNixBase32(randomBytes(32))}`,
      `NarSize: ${nar.length + 96}`,
      `References: ${path.references.map((ref) => ref.slice("/nix/store/".length)).join(" ")}`,
      ...(path.extra ? [path.extra] : []),
      "",
    ].join("\n");
    writeFileSync(join(dir, `${path.storePath.slice(11, 43)}.narinfo`), narinfo);
  }
}

export interface TestBundle {
  file: string;
  bytes: Buffer;
  manifest: BundleManifest;
  paths: FakePath[];
}

/** A bundle of a small closure: a system referring to two libraries. */
export async function makeBundle(
  key: TestKey,
  options: { sequence?: number; label?: string; omitted?: OmittedPath[]; mutate?: (paths: FakePath[]) => void; onProgress?: BundleProgress } = {},
): Promise<TestBundle> {
  const dir = scratch();
  const lib = fakeStorePath("lib");
  const data = fakeStorePath("data");
  const system = fakeStorePath(`nixos-system-${options.label ?? "web-1"}`);
  const paths: FakePath[] = [
    { storePath: lib, references: [lib], size: 3000 },
    { storePath: data, references: [], size: 70_000 },
    { storePath: system, references: [lib, data, ...(options.omitted ?? []).map((entry) => entry.storePath)], size: 1024 },
  ];
  options.mutate?.(paths);
  makeCache(join(dir, "cache"), paths);
  const file = join(dir, "bundle.ferry");
  const { manifest } = await writeBundle({
    cacheDir: join(dir, "cache"),
    paths: paths.map((path) => path.storePath),
    omitted: options.omitted ?? [],
    hosts: { [options.label ?? "web-1"]: system },
    sequence: options.sequence ?? 7,
    since: null,
    signingKey: key.secret,
    output: file,
    now: new Date("2026-11-21T10:00:00.000Z"),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
  return { file, bytes: readFileSync(file), manifest, paths };
}

export async function* chunks(bytes: Buffer, size = 4096): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < bytes.length; offset += size) yield bytes.subarray(offset, offset + size);
}
