import { FerryError } from "../errors.js";

/**
 * The strict subset of POSIX ustar that bundles use: regular files only, names
 * under 100 bytes, sizes in octal (or GNU base-256 above 8 GiB), two zero
 * blocks at the end. Any tar tool can list and extract a bundle; the reader
 * accepts nothing else, so a damaged archive is an error, not a guess.
 */
export const BLOCK = 512;
const MAX_OCTAL_SIZE = 0o77777777777;

export interface TarEntry {
  name: string;
  size: number;
}

function writeOctal(header: Buffer, offset: number, length: number, value: number): void {
  header.write(value.toString(8).padStart(length - 1, "0") + "\0", offset, length, "ascii");
}

/** One 512-byte ustar header for a regular file. */
export function tarHeader(name: string, size: number, mtimeSeconds: number): Buffer {
  if (Buffer.byteLength(name) >= 100 || !/^[A-Za-z0-9._/-]+$/.test(name)) throw new FerryError("E_INTERNAL", `unusable tar entry name ${name}`);
  const header = Buffer.alloc(BLOCK);
  header.write(name, 0, 100, "ascii");
  writeOctal(header, 100, 8, 0o644);
  writeOctal(header, 108, 8, 0);
  writeOctal(header, 116, 8, 0);
  if (size <= MAX_OCTAL_SIZE) writeOctal(header, 124, 12, size);
  else {
    // GNU base-256: high bit set, big-endian binary in the remaining bytes.
    header[124] = 0x80;
    header.writeBigUInt64BE(BigInt(size), 128);
  }
  writeOctal(header, 136, 12, Math.max(0, Math.floor(mtimeSeconds)));
  header.write("        ", 148, 8, "ascii");
  header.write("0", 156, 1, "ascii");
  header.write("ustar\0", 257, 6, "ascii");
  header.write("00", 263, 2, "ascii");
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8, "ascii");
  return header;
}

/** Zero bytes that pad an entry of `size` bytes to a whole block. */
export function tarPadding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

export const TAR_END = Buffer.alloc(2 * BLOCK);

function truncated(what: string): FerryError {
  return new FerryError("E_BUNDLE_TRUNCATED", `the bundle ends in the middle of ${what}`);
}

function tampered(what: string): FerryError {
  return new FerryError("E_BUNDLE_TAMPERED", what);
}

function readNumber(header: Buffer, offset: number, length: number, what: string): number {
  const field = header.subarray(offset, offset + length);
  if (((field[0] as number) & 0x80) !== 0) {
    if (field[0] !== 0x80 || field.readUInt32BE(0) !== 0x80000000) throw tampered(`tar header: ${what} out of range`);
    const value = field.readBigUInt64BE(4);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw tampered(`tar header: ${what} out of range`);
    return Number(value);
  }
  const text = field.toString("ascii").replace(/[\0 ]+$/, "");
  if (!/^[0-7]+$/.test(text)) throw tampered(`tar header: ${what} is not a number`);
  return parseInt(text, 8);
}

function isZero(buffer: Buffer): boolean {
  for (const byte of buffer) if (byte !== 0) return false;
  return true;
}

/**
 * Pulls entries one after another from a byte stream. Only one entry is open
 * at a time and its body is handed out in the chunks the source produced, so
 * memory stays bounded whatever the entry sizes.
 */
export class TarReader {
  private readonly source: AsyncIterator<Buffer>;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private remaining = 0;
  private padding = 0;
  private ended = false;
  /** Bytes consumed so far, for progress and error messages. */
  offset = 0;

  constructor(source: AsyncIterable<Buffer | Uint8Array | string>) {
    const iterator = source[Symbol.asyncIterator]();
    this.source = {
      next: async () => {
        const result = await iterator.next();
        if (result.done) return result;
        const value = result.value;
        return { done: false, value: typeof value === "string" ? Buffer.from(value) : Buffer.isBuffer(value) ? value : Buffer.from(value) };
      },
    };
  }

  private async fill(): Promise<boolean> {
    if (this.ended) return false;
    const next = await this.source.next();
    if (next.done) {
      this.ended = true;
      return false;
    }
    if (next.value.length > 0) {
      this.pending.push(next.value);
      this.pendingBytes += next.value.length;
    }
    return true;
  }

  /** Up to `max` bytes, at least one; undefined at the end of the source. */
  private async take(max: number): Promise<Buffer | undefined> {
    while (this.pendingBytes === 0) if (!(await this.fill())) return undefined;
    const first = this.pending[0] as Buffer;
    const chunk = first.length <= max ? first : first.subarray(0, max);
    if (chunk === first) this.pending.shift();
    else this.pending[0] = first.subarray(max);
    this.pendingBytes -= chunk.length;
    this.offset += chunk.length;
    return chunk;
  }

  private async exactly(length: number, what: string): Promise<Buffer> {
    while (this.pendingBytes < length) if (!(await this.fill())) throw truncated(what);
    const parts: Buffer[] = [];
    let needed = length;
    while (needed > 0) {
      const chunk = (await this.take(needed)) as Buffer;
      parts.push(chunk);
      needed -= chunk.length;
    }
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
  }

  /** The next entry's header, or null after the end-of-archive marker. */
  async next(): Promise<TarEntry | null> {
    if (this.remaining > 0 || this.padding > 0) await this.skip();
    const header = await this.exactly(BLOCK, "a tar header");
    if (isZero(header)) {
      if (!isZero(await this.exactly(BLOCK, "the end-of-archive marker"))) throw tampered("damaged end-of-archive marker");
      // Readers may pad to a record size with zeros; anything else is appended data.
      for (let chunk = await this.take(1 << 20); chunk; chunk = await this.take(1 << 20)) {
        if (!isZero(chunk)) throw tampered("the bundle has data after its end-of-archive marker");
      }
      return null;
    }
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (header[i] as number);
    if (readNumber(header, 148, 8, "checksum") !== sum) throw tampered(`tar header checksum mismatch at byte ${this.offset - BLOCK}`);
    if (header.toString("ascii", 257, 262) !== "ustar") throw tampered("not a ustar archive");
    const type = header.toString("ascii", 156, 157);
    if (type !== "0" && type !== "\0") throw tampered(`tar entry of type ${JSON.stringify(type)}: bundles hold regular files only`);
    const nameEnd = header.indexOf(0, 0);
    const name = header.toString("utf8", 0, nameEnd < 0 || nameEnd > 100 ? 100 : nameEnd);
    if (header[345] !== 0) throw tampered("tar entry with a name prefix: bundles use short names only");
    const size = readNumber(header, 124, 12, "size");
    this.remaining = size;
    this.padding = (BLOCK - (size % BLOCK)) % BLOCK;
    return { name, size };
  }

  /** The current entry's bytes, in order; must be consumed before next(). */
  async *body(): AsyncGenerator<Buffer> {
    while (this.remaining > 0) {
      const chunk = await this.take(Math.min(this.remaining, 1 << 20));
      if (!chunk) throw truncated("a file");
      this.remaining -= chunk.length;
      yield chunk;
    }
    await this.consumePadding();
  }

  /** The whole body of a small entry. */
  async readAll(limit: number): Promise<Buffer> {
    if (this.remaining > limit) throw tampered(`tar entry of ${this.remaining} bytes exceeds the limit of ${limit}`);
    const data = await this.exactly(this.remaining, "a file");
    this.remaining = 0;
    await this.consumePadding();
    return data;
  }

  private async consumePadding(): Promise<void> {
    if (this.padding === 0) return;
    const pad = await this.exactly(this.padding, "tar padding");
    this.padding = 0;
    if (!isZero(pad)) throw tampered("non-zero tar padding");
  }

  async skip(): Promise<void> {
    for await (const _chunk of this.body()) void _chunk;
  }
}
