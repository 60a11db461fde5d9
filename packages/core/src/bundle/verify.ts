import { createHash } from "node:crypto";
import { FerryError } from "../errors.js";
import { parseNarInfo } from "../narinfo.js";
import { findValidSignature, narInfoFingerprint, parsePublicKeys, parseSha256, toNixBase32 } from "./keys.js";
import {
  MANIFEST_FILE,
  MAX_MANIFEST_BYTES,
  MAX_NARINFO_BYTES,
  MAX_SIGNATURE_BYTES,
  NARINFO_NAME,
  NAR_NAME,
  SIGNATURE_FILE,
  STREAMED_MARKER_FILE,
  STREAMED_MARKER_TEXT,
  HEAD_FILE,
  HEAD_SIGNATURE_FILE,
  parseBundleHead,
  BUNDLE_VERSION_STREAMED,
  CACHE_INFO_FILE,
  CACHE_MANIFEST_MARKER_FILE,
  closureOf,
  parseManifest,
  sha256Hex,
  verifyManifestSignature,
  type BundleFile,
  type BundleManifest,
  type BundlePath,
} from "./manifest.js";
import { TarReader } from "./tar.js";
import { parseStorePath } from "../validate.js";

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

/** The manifest's bytes and its signature lines, read from the head of a version 1 bundle without checking them. */
export async function readBundleHead(reader: TarReader): Promise<{ manifestBytes: Buffer; signatureFile: string }> {
  const start = await readBundleStart(reader);
  if (start.version !== 1) throw new FerryError("E_BUNDLE_FORMAT", "a version 2 bundle carries its manifest at the end: use readBundleManifest");
  return start;
}

/** The first entries: a version 1 bundle's manifest and signature, or a version 2 bundle's marker (its manifest comes last). */
export async function readBundleStart(
  reader: TarReader,
): Promise<{ version: 1; manifestBytes: Buffer; signatureFile: string } | { version: 2; headBytes: Buffer; headSignature: string }> {
  const first = await reader.next();
  if (first?.name === STREAMED_MARKER_FILE) {
    if (!(await reader.readAll(STREAMED_MARKER_TEXT.length)).equals(Buffer.from(STREAMED_MARKER_TEXT)))
      throw new FerryError("E_BUNDLE_FORMAT", `not a Ferry bundle: a damaged ${STREAMED_MARKER_FILE} entry`);
    const head = await reader.next();
    if (head?.name !== HEAD_FILE) throw tampered(`expected ${HEAD_FILE} after ${STREAMED_MARKER_FILE}, found ${JSON.stringify(head?.name ?? "the end")}`);
    const headBytes = await reader.readAll(MAX_MANIFEST_BYTES);
    const sig = await reader.next();
    if (sig?.name !== HEAD_SIGNATURE_FILE)
      throw tampered(`expected ${HEAD_SIGNATURE_FILE} after ${HEAD_FILE}, found ${JSON.stringify(sig?.name ?? "the end")}`);
    return { version: 2, headBytes, headSignature: (await reader.readAll(MAX_SIGNATURE_BYTES)).toString("utf8") };
  }
  if (first?.name === CACHE_MANIFEST_MARKER_FILE)
    throw new FerryError("E_BUNDLE_FORMAT", "this is a detached cache manifest, not a bundle: import the cache tarball it describes with --manifest-file THIS");
  if (first?.name !== MANIFEST_FILE)
    throw new FerryError("E_BUNDLE_FORMAT", `not a Ferry bundle: the first entry is ${JSON.stringify(first?.name ?? "missing")}`);
  const manifestBytes = await reader.readAll(MAX_MANIFEST_BYTES);
  const second = await reader.next();
  if (second?.name !== SIGNATURE_FILE) throw tampered(`expected ${SIGNATURE_FILE} after the manifest, found ${JSON.stringify(second?.name ?? "the end")}`);
  const signatureFile = (await reader.readAll(MAX_SIGNATURE_BYTES)).toString("utf8");
  return { version: 1, manifestBytes, signatureFile };
}

/** A bundle's manifest and signature lines, unchecked; a version 2 bundle is read (not kept) to its end to find them. */
export async function readBundleManifest(reader: TarReader): Promise<{ manifestBytes: Buffer; signatureFile: string }> {
  const start = await readBundleStart(reader);
  if (start.version === 1) return start;
  for (let entry = await reader.next(); entry; entry = await reader.next()) {
    if (entry.name !== MANIFEST_FILE) continue;
    const manifestBytes = await reader.readAll(MAX_MANIFEST_BYTES);
    const second = await reader.next();
    if (second?.name !== SIGNATURE_FILE) break;
    return { manifestBytes, signatureFile: (await reader.readAll(MAX_SIGNATURE_BYTES)).toString("utf8") };
  }
  throw new FerryError("E_BUNDLE_TRUNCATED", "the bundle ends before its manifest and signature");
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
  const start = await readBundleStart(reader);
  if (start.version === 2) return verifyStreamed(reader, trusted, options, start);
  const { manifestBytes, signatureFile } = start;
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

/** Most files a version 2 bundle may hold before its manifest: bounds what an unsigned stream can make a reader track. */
const MAX_STREAMED_FILES = 2_000_000;
/** Narinfo text kept until the manifest arrives: as much as the largest manifest may list (about 600 bytes a path). */
const MAX_STREAMED_TEXT_BYTES = MAX_MANIFEST_BYTES;

interface SeenFile extends BundleFile {
  /** Kept for nix-cache-info and narinfos only. */
  text?: string;
}

/**
 * Version 2: the files come first, the signed manifest last. Each file is
 * hashed while it goes to the sink (which must treat it as untrusted), then
 * the manifest's signature is checked, and only then is every file held
 * against it: the same list, order, sizes and hashes, and the same narinfo
 * checks as version 1. A receiver's onManifest runs after the whole stream.
 */
async function verifyStreamed(
  reader: TarReader,
  trusted: ReturnType<typeof parsePublicKeys>,
  options: VerifyOptions,
  start: { headBytes: Buffer; headSignature: string },
): Promise<VerifiedBundle> {
  // The signed head first: nothing unsigned reaches the sink, only the files of paths it announced, within its sizes.
  verifyManifestSignature(start.headBytes, start.headSignature, trusted, "head");
  const head = parseBundleHead(start.headBytes);
  const announced = new Set(head.paths.map((path) => `${parseStorePath(path.storePath).hash}.narinfo`));
  const narBudget = head.paths.reduce((sum, path) => sum + path.narSize + Math.ceil(path.narSize / 128) + 65_536, 0);
  let narBytes = 0;
  let nars = 0;
  const seen: SeenFile[] = [];
  let keptText = 0;
  let entry = await reader.next();
  for (; entry !== null && entry.name !== MANIFEST_FILE; entry = await reader.next()) {
    const name = entry.name;
    const isNar = NAR_NAME.test(name);
    if (!isNar && !NARINFO_NAME.test(name) && name !== CACHE_INFO_FILE) throw tampered(`unexpected entry ${JSON.stringify(name)} in the bundle`);
    if (NARINFO_NAME.test(name) && !announced.has(name)) throw tampered(`${name} is not a path the signed head announced`);
    if (isNar) {
      nars += 1;
      narBytes += entry.size;
      if (nars > head.paths.length || narBytes > narBudget) throw tampered("the bundle carries more NAR data than its signed head announced");
    }
    if (!isNar && entry.size > MAX_NARINFO_BYTES) throw tampered(`${name} is ${entry.size} bytes, too large for its kind`);
    if (seen.length >= MAX_STREAMED_FILES) throw tampered(`more than ${MAX_STREAMED_FILES} files before the manifest`);
    if (!isNar) keptText += entry.size;
    if (keptText > MAX_STREAMED_TEXT_BYTES) throw tampered(`more than ${MAX_STREAMED_TEXT_BYTES} bytes of narinfos before the manifest`);
    const hash = createHash("sha256");
    const kept: Buffer[] = [];
    async function* hashed(): AsyncGenerator<Buffer> {
      for await (const chunk of reader.body()) {
        hash.update(chunk);
        if (!isNar) kept.push(chunk);
        yield chunk;
      }
    }
    const body = hashed();
    if (options.sink) await options.sink(name, entry.size, body);
    for await (const _rest of body) void _rest;
    seen.push({ file: name, size: entry.size, sha256: hash.digest("hex"), ...(isNar ? {} : { text: Buffer.concat(kept).toString("utf8") }) });
  }
  if (entry === null) throw new FerryError("E_BUNDLE_TRUNCATED", "the bundle ends before its manifest");
  const manifestBytes = await reader.readAll(MAX_MANIFEST_BYTES);
  const second = await reader.next();
  if (second?.name !== SIGNATURE_FILE) {
    if (second === null) throw new FerryError("E_BUNDLE_TRUNCATED", `the bundle ends before ${SIGNATURE_FILE}`);
    throw tampered(`expected ${SIGNATURE_FILE} after the manifest, found ${JSON.stringify(second.name)}`);
  }
  const signatureFile = (await reader.readAll(MAX_SIGNATURE_BYTES)).toString("utf8");
  const end = await reader.next();
  if (end !== null) throw tampered(`unexpected entry ${end.name} after the signature`);
  const signer = verifyManifestSignature(manifestBytes, signatureFile, trusted);
  const manifest = parseManifest(manifestBytes);
  if (manifest.version !== BUNDLE_VERSION_STREAMED) throw tampered(`a version ${manifest.version} manifest at the end of a version 2 bundle`);
  const listed = JSON.stringify(manifest.paths.map((path) => ({ storePath: path.storePath, narSize: path.narSize })));
  if (manifest.sequence !== head.sequence || listed !== JSON.stringify(head.paths)) throw tampered("the manifest disagrees with the bundle's signed head");
  const closure = closureOf(manifest);
  await options.onManifest?.({ manifest, signer });

  const expected: BundleFile[] = [manifest.nixCacheInfo, ...manifest.paths.flatMap((path) => [path.nar, path.narinfo])];
  if (seen.length !== expected.length) throw tampered(`the bundle holds ${seen.length} files; the signed manifest lists ${expected.length}`);
  expected.forEach((want, index) => {
    const got = seen[index] as SeenFile;
    if (got.file !== want.file)
      throw tampered(`expected ${want.file} at position ${index + 1}, found ${got.file}: the bundle's files are missing, extra or reordered`);
    if (got.size !== want.size) throw tampered(`${got.file} is ${got.size} bytes; the manifest says ${want.size}`);
    if (got.sha256 !== want.sha256) throw tampered(`${got.file} does not match the SHA-256 in the signed manifest`);
  });
  if (!(seen[0]?.text ?? "").includes("StoreDir: /nix/store\n")) throw tampered("nix-cache-info names another store directory");
  manifest.paths.forEach((path, index) => checkNarInfo(path, (seen[2 + 2 * index] as SeenFile).text ?? "", closure, trusted));
  return { manifest, manifestBytes, signatureFile, signer, manifestSha256: sha256Hex(manifestBytes), bytes: reader.offset };
}
