import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  FerryError,
  assertHostName,
  assertStorePath,
  canonicalHostMap,
  assertTag,
  isStorePath,
  parseHostPort,
  parseStorePath,
  type ErrorCode,
} from "@ferry/core";

/** Asserts that `fn` throws a FerryError carrying `code`. */
function throwsCode(fn: () => unknown, code: ErrorCode): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof FerryError, `expected a FerryError, got ${String(error)}`);
    assert.equal(error.code, code);
    return true;
  });
}

const VALID_HASH = "pz5wv3mkbf4bwihvsz8yqydfwb9bfhy5";

describe("parseStorePath / assertStorePath / isStorePath", () => {
  test("accepts real-looking store paths and splits hash and name", () => {
    const path = `/nix/store/${VALID_HASH}-nixos-system-web1-24.05.20240601.abcdef0`;
    assert.deepEqual(parseStorePath(path), { hash: VALID_HASH, name: "nixos-system-web1-24.05.20240601.abcdef0" });
    assert.equal(assertStorePath(path), path);
    assert.equal(isStorePath(path), true);
  });

  test("accepts every character Nix allows in a name", () => {
    for (const name of ["a", "A-Z_0.9", "foo+bar", "x?y=z", "gcc-13.2.0-lib", "_leading-underscore", "-leading-dash", "a".repeat(211)]) {
      assert.equal(isStorePath(`/nix/store/${VALID_HASH}-${name}`), true, name);
    }
  });

  test("rejects a wrong store prefix", () => {
    for (const path of [
      `/nix/stor/${VALID_HASH}-x`,
      `/gnu/store/${VALID_HASH}-x`,
      `nix/store/${VALID_HASH}-x`,
      `//nix/store/${VALID_HASH}-x`,
      `/nix/store//${VALID_HASH}-x`,
      ` /nix/store/${VALID_HASH}-x`,
      `/nix/store/${VALID_HASH}-x\n`,
      `/nix/store/${VALID_HASH}`,
      `/nix/store/${VALID_HASH}-`,
      `/nix/store/${VALID_HASH}_x`,
    ]) {
      throwsCode(() => parseStorePath(path), "E_BAD_STORE_PATH");
      assert.equal(isStorePath(path), false, JSON.stringify(path));
    }
  });

  test("rejects hashes with letters outside Nix's base32 (e, o, u, t) or upper case", () => {
    for (const bad of ["e", "o", "u", "t", "A"]) {
      const hash = bad + VALID_HASH.slice(1);
      assert.equal(hash.length, 32);
      throwsCode(() => assertStorePath(`/nix/store/${hash}-x`), "E_BAD_STORE_PATH");
    }
  });

  test("rejects hashes of 31 and 33 characters", () => {
    throwsCode(() => assertStorePath(`/nix/store/${VALID_HASH.slice(1)}-x`), "E_BAD_STORE_PATH");
    throwsCode(() => assertStorePath(`/nix/store/${VALID_HASH}a-x`), "E_BAD_STORE_PATH");
  });

  test("rejects names that could escape or confuse: '/', spaces, dot-led names, unicode, too long", () => {
    for (const name of ["a/b", "../etc", "a/../b", "a b", "a\tb", "a\0b", ".", "..", ".hidden", ".-x", "café", "x😀", "a;rm", "$(x)", "a".repeat(212)]) {
      throwsCode(() => assertStorePath(`/nix/store/${VALID_HASH}-${name}`), "E_BAD_STORE_PATH");
    }
    // A subpath inside a store path is not a store path.
    throwsCode(() => assertStorePath(`/nix/store/${VALID_HASH}-x/bin/switch-to-configuration`), "E_BAD_STORE_PATH");
  });

  test("rejects non-strings without throwing anything but FerryError", () => {
    for (const value of [undefined, null, 42, {}, [], Symbol("s"), new String(`/nix/store/${VALID_HASH}-x`)]) {
      throwsCode(() => parseStorePath(value), "E_BAD_STORE_PATH");
      assert.equal(isStorePath(value), false);
    }
  });

  test("the error carries the stable hint", () => {
    try {
      assertStorePath("/tmp/x");
      assert.fail("no error");
    } catch (error) {
      assert.ok(error instanceof FerryError);
      assert.match(error.hint, /\/nix\/store/);
      assert.match(error.message, /\/tmp\/x/);
    }
  });
});

describe("assertHostName", () => {
  test("accepts DNS-style names", () => {
    for (const name of [
      "web1",
      "a",
      "WEB-01",
      "db.example.org",
      "x1.y2",
      "a".repeat(63),
      `${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(61)}`,
    ]) {
      assert.equal(assertHostName(name), name.toLowerCase());
    }
  });

  test("returns the canonical lower-case name: Web-2, WEB-2 and web-2 are one host", () => {
    for (const name of ["Web-2", "WEB-2", "web-2", "wEb-2"]) assert.equal(assertHostName(name), "web-2");
    assert.equal(assertHostName("DB.Example.ORG"), "db.example.org");
    // Only ASCII letters fold: anything else is refused before case is considered.
    throwsCode(() => assertHostName("K\u212a"), "E_BAD_HOST_NAME");
  });

  test("rejects path tricks, spaces, empty labels, bad hyphens, overlong names and labels", () => {
    const tooLong = `${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(62)}`;
    assert.equal(tooLong.length, 254);
    for (const name of [
      "",
      "a/b",
      "/etc",
      "..",
      ".",
      "../x",
      "a..b",
      ".a",
      "a.",
      "a b",
      " a",
      "a\n",
      "-a",
      "a-",
      "a_b",
      "a.-b",
      "ünï",
      "a".repeat(64),
      tooLong,
    ]) {
      throwsCode(() => assertHostName(name), "E_BAD_HOST_NAME");
    }
  });

  test("rejects non-strings", () => {
    for (const value of [undefined, null, 1, ["a"], { name: "a" }]) throwsCode(() => assertHostName(value), "E_BAD_HOST_NAME");
  });
});

describe("canonicalHostMap", () => {
  test("keys come out canonical, values unchanged, order kept", () => {
    assert.deepEqual(
      [
        ...canonicalHostMap([
          ["Web-2", 1],
          ["db-1", 2],
        ]),
      ],
      [
        ["web-2", 1],
        ["db-1", 2],
      ],
    );
  });

  test("two keys naming one host are refused, naming both spellings", () => {
    assert.throws(
      () =>
        canonicalHostMap([
          ["Web-2", "/a"],
          ["web-2", "/b"],
        ]),
      (error: unknown) =>
        error instanceof FerryError && error.code === "E_BAD_HOST_NAME" && /"Web-2" and "web-2" are the same host \(web-2\)/.test(error.message),
    );
    throwsCode(() => canonicalHostMap([["a/b", 1]]), "E_BAD_HOST_NAME");
  });
});

describe("assertTag", () => {
  test("accepts letters, digits, '-', '_' and '.' up to 63 chars", () => {
    for (const tag of ["prod", "eu-west_1", "v1.2", "A", "0", "a".repeat(63)]) assert.equal(assertTag(tag), tag);
  });

  test("rejects empty, leading punctuation, other characters, too long, non-strings", () => {
    for (const tag of ["", "-x", ".x", "_x", "a b", "a/b", "a,b", "a:b", "é", "a".repeat(64), undefined, 5, null]) {
      throwsCode(() => assertTag(tag), "E_BAD_TAG");
    }
  });
});

describe("parseHostPort", () => {
  test("parses IPv4, names and bracketed IPv6", () => {
    assert.deepEqual(parseHostPort("127.0.0.1:7070", "--listen"), { host: "127.0.0.1", port: 7070 });
    assert.deepEqual(parseHostPort("0.0.0.0:0", "--listen"), { host: "0.0.0.0", port: 0 });
    assert.deepEqual(parseHostPort("controller.example:65535", "--listen"), { host: "controller.example", port: 65535 });
    assert.deepEqual(parseHostPort("[::1]:80", "--listen"), { host: "::1", port: 80 });
    assert.deepEqual(parseHostPort("[fe80::1:2]:443", "--listen"), { host: "fe80::1:2", port: 443 });
  });

  test("rejects bad ports and shapes, naming the flag", () => {
    for (const value of [
      "127.0.0.1",
      "127.0.0.1:",
      ":80",
      "127.0.0.1:65536",
      "127.0.0.1:99999",
      "127.0.0.1:-1",
      "127.0.0.1:8o",
      "::1:80",
      "[::1]",
      "[::1]80",
      "a b:80",
      "[::1]:",
      "127.0.0.1:123456",
      "",
    ]) {
      assert.throws(
        () => parseHostPort(value, "--grpc-listen"),
        (error: unknown) => error instanceof FerryError && error.code === "E_BAD_ARGUMENT" && error.message.includes("--grpc-listen"),
        JSON.stringify(value),
      );
    }
  });
});
