import { createHash } from "node:crypto";
import { FerryError } from "../errors.js";
import { parseNarInfo } from "../narinfo.js";
import { findValidSignature, narInfoFingerprint, parsePublicKeys, parseSha256, toNixBase32 } from "./keys.js";
import {
  MANIFEST_FILE,
  MAX_MANIFEST_BYTES,
  MAX_NARINFO_BYTES,
  MAX_SIGNATURE_BYTES,
  SIGNATURE_FILE,
  closureOf,
  parseManifest,
  sha256Hex,
  verifyManifestSignature,
  type BundleFile,
  type BundleManifest,
  type BundlePath,
} from "./manifest.js";
import { TarReader } from "./tar.js";

/**
 * Receives each file of the bundle while it is being verified (to extract it,
 * or upload it). A sink must treat what it gets as untrusted until
 * verifyBundle resolves: a later file may still fail.
 */
export type BundleSink = (file: string, size: number, body: AsyncIterable<Buffer>) => Promise<void>;

export interface VerifyOptions {
  /** Nix public keys (`NAME:BASE64`) trusted for both the manifest and the narinfos. */
  trustedKeys: readonly string[];
  sink?: BundleSink;
  /**
   * Called once the manifest's signature has been checked and the manifest
   * parsed, before any other byte of the bundle is read: a receiver can refuse
   * early (replay, unknown host) without taking in the rest.
   */
  onManifest?: (head: { manifest: BundleManifest; signer: string }) => Promise<void> | void;
}

export interface VerifiedBundle {
  manifest: BundleManifest;
  manifestBytes: Buffer;
  signatureFile: string;
  /** Key that signed the manifest. */
  signer: string;
  manifestSha256: string;
  /** Bytes read from the archive. */
  bytes: number;
}

const COMPRESSION_BY_EXTENSION: Record<string, string> = { ".nar.zst": "zstd", ".nar.xz": "xz", ".nar.bz2": "bzip2", ".nar": "none" };

function tampered(message: string): FerryError {
  return new FerryError("E_BUNDLE_TAMPERED", message);
}

/** The manifest's bytes and its signature lines, read from the head of a bundle without checking them. */
export async function readBundleHead(reader: TarReader): Promise<{ manifestBytes: Buffer; signatureFile: string }> {
  const first = await reader.next();
  if (first?.name !== MANIFEST_FILE)
    throw new FerryError("E_BUNDLE_FORMAT", `not a Ferry bundle: the first entry is ${JSON.stringify(first?.name ?? "missing")}`);
  const manifestBytes = await reader.readAll(MAX_MANIFEST_BYTES);
  const second = await reader.next();
  if (second?.name !== SIGNATURE_FILE) throw tampered(`expected ${SIGNATURE_FILE} after the manifest, found ${JSON.stringify(second?.name ?? "the end")}`);
  const signatureFile = (await reader.readAll(MAX_SIGNATURE_BYTES)).toString("utf8");
  return { manifestBytes, signatureFile };
}

/**
 * Checks a whole bundle in one streaming pass, touching no store: the
 * manifest's signature first (before the manifest is parsed or any other byte looked at), then every
 * file in exactly the manifest's order against its size and SHA-256, then each
 * narinfo against the manifest and its Nix signature, then the end of the
 * archive. Throws E_BUNDLE_TRUNCATED, E_BUNDLE_TAMPERED, E_BUNDLE_SIGNATURE,
 * E_BUNDLE_FORMAT or E_BUNDLE_VERSION.
 */
export async function verifyBundle(source: AsyncIterable<Buffer | Uint8Array | string>, options: VerifyOptions): Promise<VerifiedBundle> {
  const trusted = parsePublicKeys(options.trustedKeys);
  const reader = new TarReader(source);
  const { manifestBytes, signatureFile } = await readBundleHead(reader);
  // The signature is checked on the raw bytes before the manifest is even parsed.
  const signer = verifyManifestSignature(manifestBytes, signatureFile, trusted);
  const manifest = parseManifest(manifestBytes);
  const closure = closureOf(manifest);
  await options.onManifest?.({ manifest, signer });

  const expectFile = async (expected: BundleFile): Promise<Buffer | undefined> => {
    const entry = await reader.next();
    if (entry === null) throw new FerryError("E_BUNDLE_TRUNCATED", `the bundle ends before ${expected.file}`);
    if (entry.name !== expected.file) throw tampered(`expected ${expected.file} next, found ${entry.name}: the bundle's files are missing, extra or reordered`);
    if (entry.size !== expected.size) throw tampered(`${entry.name} is ${entry.size} bytes; the manifest says ${expected.size}`);
    const hash = createHash("sha256");
    const small = expected.size <= MAX_NARINFO_BYTES && !expected.file.startsWith("nar/");
    const kept: Buffer[] = [];
    async function* hashed(): AsyncGenerator<Buffer> {
      for await (const chunk of reader.body()) {
        hash.update(chunk);
        if (small) kept.push(chunk);
        yield chunk;
      }
    }
    if (options.sink) {
      const body = hashed();
      await options.sink(entry.name, entry.size, body);
      for await (const _rest of body) void _rest;
    } else {
      for await (const _chunk of hashed()) void _chunk;
    }
    if (hash.digest("hex") !== expected.sha256) throw tampered(`${entry.name} does not match the SHA-256 in the signed manifest`);
    return small ? Buffer.concat(kept) : undefined;
  };

  const cacheInfo = await expectFile(manifest.nixCacheInfo);
  if (!cacheInfo?.toString("utf8").includes("StoreDir: /nix/store\n")) throw tampered("nix-cache-info names another store directory");
  for (const path of manifest.paths) {
    await expectFile(path.nar);
    const narinfo = await expectFile(path.narinfo);
    checkNarInfo(path, (narinfo as Buffer).toString("utf8"), closure, trusted);
  }
  const end = await reader.next();
  if (end !== null) throw tampered(`unexpected entry ${end.name} after the last file the manifest lists`);
  return { manifest, manifestBytes, signatureFile, signer, manifestSha256: sha256Hex(manifestBytes), bytes: reader.offset };
}

function checkNarInfo(path: BundlePath, text: string, closure: ReadonlySet<string>, trusted: ReturnType<typeof parsePublicKeys>): void {
  let info: ReturnType<typeof parseNarInfo>;
  try {
    info = parseNarInfo(text);
  } catch (error) {
    throw tampered(`${path.narinfo.file}: ${(error as Error).message}`);
  }
  const narDigest = parseSha256(info.narHash);
  const mismatch = (field: string): FerryError => tampered(`${path.narinfo.file}: ${field} disagrees with the signed manifest`);
  if (info.storePath !== path.storePath) throw mismatch("StorePath");
  if (info.url !== path.nar.file) throw mismatch("URL");
  if (info.narSize !== path.narSize) throw mismatch("NarSize");
  if (!narDigest || !narDigest.equals(parseSha256(path.narHash) ?? Buffer.alloc(0))) throw mismatch("NarHash");
  if (info.fileSize !== undefined && info.fileSize !== path.nar.size) throw mismatch("FileSize");
  const extension = Object.keys(COMPRESSION_BY_EXTENSION).find((suffix) => path.nar.file.endsWith(suffix)) as string;
  if (info.compression !== COMPRESSION_BY_EXTENSION[extension]) throw mismatch("Compression");
  const fileHash = /^FileHash: (.*)$/m.exec(text)?.[1];
  if (fileHash !== undefined && parseSha256(fileHash)?.toString("hex") !== path.nar.sha256) throw mismatch("FileHash");
  for (const reference of info.references) {
    if (!closure.has(reference)) throw tampered(`${path.storePath} refers to ${reference}, which the bundle neither carries nor lists as present at the site`);
  }
  const fingerprint = narInfoFingerprint(info.storePath, `sha256:${toNixBase32(narDigest)}`, info.narSize, info.references);
  if (!findValidSignature(info.sigs, fingerprint, trusted)) {
    throw new FerryError("E_BUNDLE_SIGNATURE", `${path.storePath} carries no Nix signature by a trusted key (Sig: ${info.sigs.length})`);
  }
}
