import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeFileAtomic } from "@ferry/core";

const root = mkdtempSync(join(tmpdir(), "ferry-atomic-"));
after(() => rmSync(root, { recursive: true, force: true }));

let counter = 0;
/** A directory path that does not exist yet: writeFileAtomic must create it. */
function freshDir(): string {
  return join(root, `case-${++counter}`);
}

const modeOf = (file: string): number => statSync(file).mode & 0o777;

describe("writeFileAtomic", () => {
  test("creates missing directories and writes the content with mode 0600 by default", () => {
    const dir = freshDir();
    const file = join(dir, "nested", "state.json");
    writeFileAtomic(file, '{"a":1}\n');
    assert.equal(readFileSync(file, "utf8"), '{"a":1}\n');
    assert.equal(modeOf(file), 0o600);
    assert.deepEqual(readdirSync(join(dir, "nested")), ["state.json"]);
  });

  test("honours an explicit mode (as far as the umask allows)", () => {
    const dir = freshDir();
    const file = join(dir, "public");
    writeFileAtomic(file, "x", 0o640);
    const umask = process.umask();
    assert.equal(modeOf(file), 0o640 & ~umask);
  });

  test("writes bytes exactly, including NULs and non-UTF-8", () => {
    const dir = freshDir();
    const file = join(dir, "blob");
    const bytes = Uint8Array.from([0, 255, 254, 10, 0, 128]);
    writeFileAtomic(file, bytes);
    assert.deepEqual(new Uint8Array(readFileSync(file)), bytes);
  });

  test("writes large content completely", () => {
    const dir = freshDir();
    const file = join(dir, "big");
    const text = "0123456789abcdef".repeat(256 * 1024); // 4 MiB
    writeFileAtomic(file, text);
    assert.equal(statSync(file).size, text.length);
    assert.equal(readFileSync(file, "utf8"), text);
  });

  test("replaces an existing file, giving it the new mode, and leaves no temp files", () => {
    const dir = freshDir();
    const file = join(dir, "token");
    writeFileAtomic(file, "old content that is longer than the new one\n", 0o644);
    const inodeBefore = statSync(file).ino;
    writeFileAtomic(file, "new\n", 0o600);
    assert.equal(readFileSync(file, "utf8"), "new\n");
    assert.equal(modeOf(file), 0o600);
    // A rename, not an in-place rewrite: readers holding the old file keep the old content.
    assert.notEqual(statSync(file).ino, inodeBefore);
    assert.deepEqual(readdirSync(dir), ["token"]);
  });

  test("with replace: false an existing file is kept and EEXIST thrown; a new one is written; no temp files either way", () => {
    const dir = freshDir();
    const file = join(dir, "secret");
    writeFileAtomic(file, "first\n", 0o600, { replace: false });
    assert.equal(readFileSync(file, "utf8"), "first\n");
    assert.throws(
      () => writeFileAtomic(file, "second\n", 0o600, { replace: false }),
      (error: unknown) => (error as { code?: string }).code === "EEXIST",
    );
    assert.equal(readFileSync(file, "utf8"), "first\n");
    assert.equal(modeOf(file), 0o600);
    assert.deepEqual(readdirSync(dir), ["secret"]);
  });

  test("many successive writes leave exactly one file with the last content", () => {
    const dir = freshDir();
    const file = join(dir, "state.json");
    for (let i = 0; i < 50; i++) writeFileAtomic(file, JSON.stringify({ i }));
    assert.deepEqual(JSON.parse(readFileSync(file, "utf8")), { i: 49 });
    assert.deepEqual(readdirSync(dir), ["state.json"]);
  });

  /** Renaming a file over a non-empty directory fails after the temp file was written. */
  function failingWrite(): string {
    const dir = freshDir();
    writeFileAtomic(join(dir, "target"), "keep me");
    const blocked = join(dir, "blocked");
    writeFileAtomic(join(blocked, "child"), "x");
    assert.throws(() => writeFileAtomic(blocked, "never"));
    return dir;
  }

  test("a failed replacement leaves the other files intact", () => {
    const dir = failingWrite();
    assert.equal(readFileSync(join(dir, "target"), "utf8"), "keep me");
    assert.equal(readFileSync(join(dir, "blocked", "child"), "utf8"), "x");
  });

  test("a failed rename leaves no temp file behind", () => {
    const dir = failingWrite();
    assert.deepEqual(readdirSync(dir).sort(), ["blocked", "target"]);
  });
});
