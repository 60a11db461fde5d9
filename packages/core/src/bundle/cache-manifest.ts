import { createReadStream } from "node:fs";
import { open, stat, type FileHandle } from "node:fs/promises";
import { FerryError } from "../errors.js";
import {
  CACHE_INFO_FILE,
  CACHE_MANIFEST_MARKER_FILE,
  CACHE_MANIFEST_MARKER_TEXT,
  MANIFEST_FILE,
  MAX_MANIFEST_BYTES,
  MAX_NARINFO_BYTES,
  MAX_SIGNATURE_BYTES,
  NARINFO_NAME,
  SIGNATURE_FILE,
  parseManifest,
  type BundleManifest,
} from "./manifest.js";
import { BLOCK, TAR_END, TarReader, tarHeader, tarPadding } from "./tar.js";

/**
 * A plain file cache tarball (`nix copy --to file://DIR`, then `tar -C DIR
 * -cf cache.tar .`) and its detached signed manifest (`ferry bundle
 * sign-cache`), presented as the format 1 bundle they make together: the
 * manifest, its signature, nix-cache-info and each path's signed narinfo come
 * from the manifest file, each NAR from the tarball, in the manifest's order.
 * This file checks nothing that matters for trust: the bytes it yields go
 * through the one bundle verifier (the CLI's and the controller's), which
 * checks the signature, every file's size and SHA-256 and every narinfo, and
 * stages and publishes exactly as for any bundle. It only refuses early what
 * cannot become a sound bundle: NARs the manifest lists that the tarball lacks
 * or holds with another size, and files in the tarball the manifest does not
 * list.
 */
export interface CacheTarBundle {
  /** The manifest as the file says it, not yet verified. */
  manifest: BundleManifest;
  /** Bytes of the assembled bundle, for an upload's length. */
  size: number;
  /** The assembled bundle; each call reads the tarball afresh. */
  chunks(): AsyncGenerator<Buffer>;
}

const MAX_MANIFEST_FILE_BYTES = 2 * MAX_MANIFEST_BYTES;
const READ_CHUNK = 1 << 20;

function format(message: string): FerryError {
  return new FerryError("E_BUNDLE_FORMAT", message);
}

function tampered(message: string): FerryError {
  return new FerryError("E_BUNDLE_TAMPERED", message);
}

interface SmallEntry {
  name: string;
  bytes: Buffer;
}

/** The detached manifest's entries after its marker: manifest.json, manifest.sig, nix-cache-info, then one narinfo per path. */
async function readManifestFile(file: string): Promise<SmallEntry[]> {
  if ((await stat(file)).size > MAX_MANIFEST_FILE_BYTES) throw format(`${file} is too large for a cache manifest`);
  const reader = new TarReader(createReadStream(file, { highWaterMark: READ_CHUNK }));
  const first = await reader.next();
  if (first?.name !== CACHE_MANIFEST_MARKER_FILE || !(await reader.readAll(1024)).equals(Buffer.from(CACHE_MANIFEST_MARKER_TEXT)))
    throw format(`${file} is not a Ferry cache manifest (make one with: ferry bundle sign-cache DIR --manifest HOSTS.json -o FILE)`);
  const entries: SmallEntry[] = [];
  const expected = [MANIFEST_FILE, SIGNATURE_FILE, CACHE_INFO_FILE];
  for (let entry = await reader.next(); entry; entry = await reader.next()) {
    const want = expected[entries.length];
    if (want !== undefined ? entry.name !== want : !NARINFO_NAME.test(entry.name)) throw tampered(`${file}: unexpected entry ${JSON.stringify(entry.name)}`);
    const limit = entry.name === MANIFEST_FILE ? MAX_MANIFEST_BYTES : entry.name === SIGNATURE_FILE ? MAX_SIGNATURE_BYTES : MAX_NARINFO_BYTES;
    entries.push({ name: entry.name, bytes: await reader.readAll(limit) });
  }
  if (entries.length < expected.length) throw new FerryError("E_BUNDLE_TRUNCATED", `${file} ends before its manifest and signature`);
  return entries;
}

function tarNumber(header: Buffer, offset: number, length: number): number {
  const field = header.subarray(offset, offset + length);
  if (((field[0] as number) & 0x80) !== 0) return Number(field.readBigUInt64BE(length - 8));
  const text = field
    .toString("ascii")
    .replace(/[\0 ]+$/, "")
    .replace(/^[ ]+/, "");
  // NaN fails every comparison: the caller names the header.
  if (!/^[0-7]*$/.test(text)) return Number.NaN;
  return text === "" ? 0 : parseInt(text, 8);
}

/** Where each regular file of the tarball lies: headers only are read, bodies skipped. */
async function indexTarball(handle: FileHandle, file: string): Promise<Map<string, { offset: number; size: number }>> {
  const size = (await handle.stat()).size;
  const files = new Map<string, { offset: number; size: number }>();
  const header = Buffer.alloc(BLOCK);
  for (let at = 0; ;) {
    if (at + BLOCK > size) throw new FerryError("E_BUNDLE_TRUNCATED", `${file} ends in the middle of a tar header at byte ${at}`);
    await handle.read(header, 0, BLOCK, at);
    if (header.every((byte) => byte === 0)) return files;
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (header[i] as number);
    if (tarNumber(header, 148, 8) !== sum || header.toString("ascii", 257, 262) !== "ustar")
      throw format(`${file} is not a tar archive, or its header at byte ${at} is damaged`);
    const type = header.toString("latin1", 156, 157);
    const nameEnd = header.indexOf(0);
    let name = header.toString("utf8", 0, nameEnd < 0 || nameEnd > 100 ? 100 : nameEnd);
    // POSIX ustar keeps long names' leading part in the prefix field; GNU tar's own format uses that space otherwise.
    if (header.toString("latin1", 257, 263) === "ustar\0" && header[345] !== 0) name = `${header.toString("utf8", 345, 500).replace(/\0.*$/s, "")}/${name}`;
    name = name.replace(/^(\.\/)+/, "");
    const bodySize = tarNumber(header, 124, 12);
    if (!Number.isSafeInteger(bodySize)) throw format(`${file}: the tar header at byte ${at} has a damaged size`);
    const offset = at + BLOCK;
    at = offset + bodySize + ((BLOCK - (bodySize % BLOCK)) % BLOCK);
    if (at > size) throw new FerryError("E_BUNDLE_TRUNCATED", `${file} ends inside ${name}`);
    if (type === "5") continue;
    if (type !== "0" && type !== "\0")
      throw format(
        `${file} holds ${JSON.stringify(name)} of tar type ${JSON.stringify(type)}; a file cache tarball holds files and directories (tar -C DIR -cf FILE .)`,
      );
    if (files.has(name)) throw tampered(`${file} holds ${name} twice`);
    files.set(name, { offset, size: bodySize });
  }
}

/** One file's bytes in the tarball; a stream per file, so a reader that stops early leaves no handle to close. */
async function* range(file: string, offset: number, size: number, what: string): AsyncGenerator<Buffer> {
  let done = 0;
  if (size > 0) {
    for await (const chunk of createReadStream(file, { start: offset, end: offset + size - 1, highWaterMark: READ_CHUNK }) as AsyncIterable<Buffer>) {
      done += chunk.length;
      yield chunk;
    }
  }
  if (done !== size) throw new FerryError("E_BUNDLE_TRUNCATED", `${what} ended early`);
}

function entryBytes(size: number): number {
  return BLOCK + size + ((BLOCK - (size % BLOCK)) % BLOCK);
}

/** Pairs a file cache tarball with its detached manifest; refuses a tarball that lacks a listed NAR or holds anything unlisted. */
export async function openCacheTarBundle(cacheTar: string, manifestFile: string): Promise<CacheTarBundle> {
  const small = await readManifestFile(manifestFile);
  const manifest = parseManifest((small[0] as SmallEntry).bytes);
  const narinfos = small.slice(3);
  if (narinfos.length !== manifest.paths.length) throw tampered(`${manifestFile} holds ${narinfos.length} narinfos for ${manifest.paths.length} paths`);
  const handle = await open(cacheTar, "r");
  let index: Map<string, { offset: number; size: number }>;
  try {
    index = await indexTarball(handle, cacheTar);
  } finally {
    await handle.close();
  }
  const listed = new Set([CACHE_INFO_FILE, ...manifest.paths.flatMap((path) => [path.nar.file, path.narinfo.file])]);
  const unlisted = [...index.keys()].filter((name) => !listed.has(name));
  if (unlisted.length > 0) throw tampered(`${cacheTar} holds ${unlisted.length} file(s) the signed manifest does not list: ${unlisted.slice(0, 5).join(", ")}`);
  for (const path of manifest.paths) {
    const found = index.get(path.nar.file);
    if (!found) throw new FerryError("E_BUNDLE_INCOMPLETE", `${cacheTar} lacks ${path.nar.file}, the NAR of ${path.storePath}`);
    if (found.size !== path.nar.size) throw tampered(`${path.nar.file} in ${cacheTar} is ${found.size} bytes; the manifest says ${path.nar.size}`);
  }
  const mtime = Math.floor(Date.parse(manifest.createdAt) / 1000);
  const head = small.slice(0, 3);
  const size =
    head.reduce((sum, entry) => sum + entryBytes(entry.bytes.length), 0) +
    manifest.paths.reduce((sum, path, i) => sum + entryBytes(path.nar.size) + entryBytes((narinfos[i] as SmallEntry).bytes.length), 0) +
    TAR_END.length;
  const smallEntry = (entry: SmallEntry): Buffer =>
    Buffer.concat([tarHeader(entry.name, entry.bytes.length, mtime), entry.bytes, tarPadding(entry.bytes.length)]);
  return {
    manifest,
    size,
    async *chunks() {
      yield Buffer.concat(head.map(smallEntry));
      for (const [i, path] of manifest.paths.entries()) {
        const found = index.get(path.nar.file) as { offset: number; size: number };
        yield tarHeader(path.nar.file, found.size, mtime);
        yield* range(cacheTar, found.offset, found.size, `${path.nar.file} in ${cacheTar}`);
        yield Buffer.concat([tarPadding(found.size), smallEntry(narinfos[i] as SmallEntry)]);
      }
      yield TAR_END;
    },
  };
}
