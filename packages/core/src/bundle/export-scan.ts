import { open, type FileHandle } from "node:fs/promises";
import { FerryError } from "../errors.js";
import { assertStorePath } from "../validate.js";

/**
 * The stream `nix-store --export PATHS` writes (Nix's exportPaths; read back by
 * `nix-store --import`), all integers u64 little-endian, strings as a u64
 * length, the bytes and zero padding to 8:
 *
 *   for each path:  1, NAR, 0x4558494e, path, count, references…, deriver, 0
 *   then:           0
 *
 * The last field of a path is 0 (Nix ≥ 2 writes no signature); `--import`
 * also takes 1 followed by one string, ignored, and so does this reader.
 */
export const EXPORT_MAGIC = 0x4558494e;

/** One path of an export: where its NAR lies in the file, and what Nix said about it. */
export interface ExportEntry {
  storePath: string;
  references: string[];
  /** Byte offset of the NAR in the export file, and its length (Nix's NarSize). */
  narOffset: number;
  narSize: number;
}

/** Bounds on what an export may declare, so that a hostile length is an error, never an allocation. */
const MAX_PATHS = 1_000_000;
const MAX_REFERENCES = 100_000;
/** `/nix/store/` + 32 + `-` + 211: anything longer is not a store path. */
const MAX_PATH_BYTES = 255;
const MAX_SIGNATURE_BYTES = 64 * 1024;
/** NAR tokens ("(", "type", "regular", …) are short; names are file names; targets are paths. */
const MAX_TOKEN_BYTES = 64;
const MAX_NAME_BYTES = 255;
const MAX_TARGET_BYTES = 4096;
const MAX_DEPTH = 2048;
const BUFFER_BYTES = 1 << 20;

function malformed(message: string): FerryError {
  return new FerryError("E_EXPORT_MALFORMED", message);
}

/** Buffered reads of a file at increasing offsets; skipping a file's contents costs no read. */
class ExportReader {
  private buffer = Buffer.alloc(0);
  /** File offset of buffer[0]. */
  private bufferAt = 0;
  position = 0;

  constructor(
    private readonly handle: FileHandle,
    readonly size: number,
  ) {}

  private async fill(bytes: number, what: string): Promise<void> {
    if (this.position + bytes > this.size)
      throw malformed(`the export ends in the middle of ${what} at byte ${this.size} (truncated?), or declares a length that runs past its end`);
    const have = this.bufferAt + this.buffer.length - this.position;
    if (have >= bytes) return;
    const length = Math.max(bytes, Math.min(BUFFER_BYTES, this.size - this.position));
    const buffer = Buffer.allocUnsafe(length);
    let read = 0;
    while (read < length) {
      const { bytesRead } = await this.handle.read(buffer, read, length - read, this.position + read);
      if (bytesRead === 0) throw malformed(`the export file shrank while it was read (at byte ${this.position + read})`);
      read += bytesRead;
    }
    this.buffer = buffer;
    this.bufferAt = this.position;
  }

  async bytes(count: number, what: string): Promise<Buffer> {
    await this.fill(count, what);
    const start = this.position - this.bufferAt;
    this.position += count;
    return this.buffer.subarray(start, start + count);
  }

  async u64(what: string): Promise<number> {
    const value = (await this.bytes(8, what)).readBigUInt64LE();
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed(`${what} at byte ${this.position - 8} is ${value}: not a plausible count or length`);
    return Number(value);
  }

  async padding(length: number, what: string): Promise<void> {
    const pad = (8 - (length % 8)) % 8;
    if (pad > 0 && !(await this.bytes(pad, `the padding of ${what}`)).equals(Buffer.alloc(pad)))
      throw malformed(`non-zero padding after ${what} at byte ${this.position - pad}`);
  }

  async string(max: number, what: string): Promise<Buffer> {
    const at = this.position;
    const length = await this.u64(`the length of ${what}`);
    if (length > max) throw malformed(`${what} at byte ${at} declares ${length} bytes; at most ${max} are allowed`);
    const value = Buffer.from(await this.bytes(length, what));
    await this.padding(length, what);
    return value;
  }

  async expect(token: string, what: string): Promise<void> {
    const at = this.position;
    const got = await this.string(MAX_TOKEN_BYTES, what);
    if (got.toString("latin1") !== token)
      throw malformed(`expected ${JSON.stringify(token)} at byte ${at} (${what}), found ${JSON.stringify(got.toString("latin1").slice(0, 40))}`);
  }

  /** Passes over `count` bytes without reading them. */
  async skip(count: number, what: string): Promise<void> {
    if (this.position + count > this.size)
      throw malformed(
        `${what} at byte ${this.position} declares ${count} bytes, but the export has only ${this.size - this.position} left: a length that lies, or a truncated export`,
      );
    this.position += count;
  }
}

/**
 * Walks one NAR's structure as Nix's parser would (tokens, node types, entry
 * names unique, sorted and free of `/` and NUL, zero padding), without
 * reading file contents; iterative, so nesting depth costs no stack.
 */
async function scanNar(reader: ExportReader, storePath: string): Promise<void> {
  const what = (part: string): string => `${part} in the NAR of ${storePath}`;
  await reader.expect("nix-archive-1", what("the NAR magic"));
  /** The last entry name of each open directory. */
  const dirs: (Buffer | null)[] = [];
  let readNode = true;
  for (;;) {
    if (readNode) {
      readNode = false;
      await reader.expect("(", what("a node"));
      await reader.expect("type", what("a node"));
      const type = (await reader.string(MAX_TOKEN_BYTES, what("a node type"))).toString("latin1");
      if (type === "directory") {
        dirs.push(null);
        if (dirs.length > MAX_DEPTH) throw malformed(what(`directories nested deeper than ${MAX_DEPTH}`));
      } else {
        if (type === "regular") {
          let field = (await reader.string(MAX_TOKEN_BYTES, what("a file"))).toString("latin1");
          if (field === "executable") {
            await reader.expect("", what("the executable flag"));
            field = (await reader.string(MAX_TOKEN_BYTES, what("a file"))).toString("latin1");
          }
          if (field !== "contents") throw malformed(what(`a file field ${JSON.stringify(field.slice(0, 40))} where "contents" belongs`));
          const length = await reader.u64(what("a file length"));
          await reader.skip(length, what("a file"));
          await reader.padding(length, what("a file"));
        } else if (type === "symlink") {
          await reader.expect("target", what("a symlink"));
          if ((await reader.string(MAX_TARGET_BYTES, what("a symlink target"))).length === 0) throw malformed(what("an empty symlink target"));
        } else {
          throw malformed(what(`an unknown node type ${JSON.stringify(type.slice(0, 40))}`));
        }
        await reader.expect(")", what("the end of a node"));
        if (dirs.length === 0) return;
        await reader.expect(")", what("the end of a directory entry"));
      }
    }
    const token = (await reader.string(MAX_TOKEN_BYTES, what("a directory"))).toString("latin1");
    if (token === ")") {
      dirs.pop();
      if (dirs.length === 0) return;
      await reader.expect(")", what("the end of a directory entry"));
    } else if (token === "entry") {
      await reader.expect("(", what("a directory entry"));
      await reader.expect("name", what("a directory entry"));
      const name = await reader.string(MAX_NAME_BYTES, what("an entry name"));
      const shown = JSON.stringify(name.toString("utf8").slice(0, 60));
      if (name.length === 0 || name.includes(0x2f) || name.includes(0) || name.equals(Buffer.from(".")) || name.equals(Buffer.from("..")))
        throw malformed(what(`an unusable entry name ${shown}`));
      const previous = dirs[dirs.length - 1];
      if (previous && Buffer.compare(previous, name) >= 0) throw malformed(what(`entry ${shown} out of order or repeated`));
      dirs[dirs.length - 1] = name;
      await reader.expect("node", what("a directory entry"));
      readNode = true;
    } else {
      throw malformed(what(`${JSON.stringify(token.slice(0, 40))} where an entry or the end of a directory belongs`));
    }
  }
}

async function storePathField(reader: ExportReader, what: string): Promise<string> {
  const at = reader.position;
  const text = (await reader.string(MAX_PATH_BYTES, what)).toString("utf8");
  try {
    return assertStorePath(text);
  } catch (error) {
    throw malformed(`${what} at byte ${at} is not a store path: ${(error as Error).message}`);
  }
}

/**
 * Reads the structure of a `nix-store --export` file: each path with its
 * references and the place of its NAR, which is checked to be a well-formed
 * NAR but not read (its bytes are hashed later, as they go into the bundle).
 * Throws E_EXPORT_MALFORMED, naming the byte where the stream went wrong.
 */
export async function scanExport(file: string): Promise<ExportEntry[]> {
  const handle = await open(file, "r");
  try {
    const reader = new ExportReader(handle, (await handle.stat()).size);
    const entries: ExportEntry[] = [];
    const seen = new Set<string>();
    for (;;) {
      const at = reader.position;
      const marker = await reader.u64("the marker before a path");
      if (marker === 0) break;
      if (marker !== 1) throw malformed(`byte ${at} holds ${marker} where an export has 1 (a path follows) or 0 (the end): not a nix-store --export stream`);
      if (entries.length >= MAX_PATHS) throw malformed(`more than ${MAX_PATHS} paths in one export`);
      const narOffset = reader.position;
      await scanNar(reader, `path ${entries.length + 1}`);
      const narSize = reader.position - narOffset;
      const magicAt = reader.position;
      const magic = await reader.u64("the export magic");
      if (magic !== EXPORT_MAGIC) throw malformed(`byte ${magicAt} holds 0x${magic.toString(16)} where the export magic 0x4558494e belongs`);
      const storePath = await storePathField(reader, "the store path");
      if (seen.has(storePath)) throw malformed(`${storePath} appears twice in the export`);
      seen.add(storePath);
      const count = await reader.u64(`the reference count of ${storePath}`);
      if (count > MAX_REFERENCES) throw malformed(`${storePath} declares ${count} references; at most ${MAX_REFERENCES} are allowed`);
      const references: string[] = [];
      for (let i = 0; i < count; i++) references.push(await storePathField(reader, `a reference of ${storePath}`));
      // The deriver (or nothing) is not carried: narinfos may omit it.
      await reader.string(MAX_PATH_BYTES, `the deriver of ${storePath}`);
      const signed = await reader.u64(`the signature flag of ${storePath}`);
      if (signed === 1) await reader.string(MAX_SIGNATURE_BYTES, `the signature of ${storePath}`);
      else if (signed !== 0) throw malformed(`the signature flag of ${storePath} is ${signed}; an export has 0 or 1`);
      entries.push({ storePath, references: [...new Set(references)].sort(), narOffset, narSize });
    }
    if (reader.position !== reader.size) throw malformed(`${reader.size - reader.position} byte(s) after the end of the export at byte ${reader.position}`);
    return entries;
  } finally {
    await handle.close();
  }
}
