import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, renameSync, writeSync, unlinkSync } from "node:fs";
import { dirname, basename, join } from "node:path";
import { randomBytes } from "node:crypto";

/**
 * Replaces a file so that a crash at any instant leaves either the old or the
 * new content, never a mix: write a temp file in the same directory, fsync it,
 * rename it over the target, then fsync the directory so the rename survives
 * power loss.
 *
 * With `replace: false` an existing file is kept and Node's EEXIST error
 * thrown: the temp file is hard-linked into place, which, unlike a check
 * followed by a rename, cannot race with another writer.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600, options: { replace?: boolean } = {}): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const temp = join(dir, `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  const fd = openSync(temp, "w", mode);
  try {
    const bytes = typeof data === "string" ? Buffer.from(data) : data;
    let offset = 0;
    while (offset < bytes.length) offset += writeSync(fd, bytes, offset, bytes.length - offset);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    unlinkSync(temp);
    throw error;
  }
  closeSync(fd);
  if (options.replace === false) {
    try {
      linkSync(temp, path);
    } finally {
      unlinkSync(temp);
    }
  } else {
    try {
      renameSync(temp, path);
    } catch (error) {
      unlinkSync(temp);
      throw error;
    }
  }
  fsyncDirectory(dir);
}

export function fsyncDirectory(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
