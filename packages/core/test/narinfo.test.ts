import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { FerryError, parseNarInfo } from "@ferry/core";

const SELF = "pz5wv3mkbf4bwihvsz8yqydfwb9bfhy5-hello-2.12.1";
const GLIBC = "1zy01hjzwvvia6h9dq5xar88v77fgh9x-glibc-2.39-52";
const NAR = "nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar.xz";

/** The shape `nix copy --to http://…` uploads, two signatures included. */
const REALISTIC = [
  `StorePath: /nix/store/${SELF}`,
  `URL: ${NAR}`,
  "Compression: xz",
  "FileHash: sha256:1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3",
  "FileSize: 51524",
  "NarHash: sha256:0dkpq4ayyk5lq5w4nqyyyzcsjy9fwz3b9d8y8pr3nvb0jkrk5yk7",
  "NarSize: 226560",
  `References: ${GLIBC} ${SELF}`,
  "Deriver: 9c1yl3zg1bzkjnq4yp5hjdcl0lqwlb8b-hello-2.12.1.drv",
  "Sig: cache.nixos.org-1:aaaaBBBBccccDDDDeeeeFFFFggggHHHHiiiiJJJJkkkkLLLLmmmmNNNNooooPPPPqqqqRRRRssss==",
  "Sig: ferry-test-1:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3ODk=",
  "",
].join("\n");

function throwsBadArgument(text: string, pattern?: RegExp): void {
  assert.throws(
    () => parseNarInfo(text),
    (error: unknown) => {
      assert.ok(error instanceof FerryError, `expected a FerryError, got ${String(error)}`);
      assert.ok(error.code === "E_BAD_ARGUMENT" || error.code === "E_BAD_STORE_PATH", error.code);
      if (pattern) assert.match(error.message, pattern);
      return true;
    },
  );
}

describe("parseNarInfo", () => {
  test("reads every field of a realistic narinfo", () => {
    const info = parseNarInfo(REALISTIC);
    assert.deepEqual(info, {
      storePath: `/nix/store/${SELF}`,
      url: NAR,
      compression: "xz",
      narHash: "sha256:0dkpq4ayyk5lq5w4nqyyyzcsjy9fwz3b9d8y8pr3nvb0jkrk5yk7",
      narSize: 226560,
      fileSize: 51524,
      references: [`/nix/store/${GLIBC}`, `/nix/store/${SELF}`],
      deriver: "9c1yl3zg1bzkjnq4yp5hjdcl0lqwlb8b-hello-2.12.1.drv",
      sigs: [
        "cache.nixos.org-1:aaaaBBBBccccDDDDeeeeFFFFggggHHHHiiiiJJJJkkkkLLLLmmmmNNNNooooPPPPqqqqRRRRssss==",
        "ferry-test-1:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3ODk=",
      ],
    });
  });

  test("minimal narinfo: empty References (Nix writes a trailing space), no Sig, default compression", () => {
    const text = [`StorePath: /nix/store/${SELF}`, `URL: nar/x.nar`, "NarHash: sha256:abc", "NarSize: 1", "References: ", ""].join("\n");
    const info = parseNarInfo(text);
    assert.deepEqual(info.references, []);
    assert.deepEqual(info.sigs, []);
    assert.equal(info.compression, "bzip2");
    assert.equal(info.fileSize, undefined);
    assert.equal(info.deriver, undefined);
  });

  test("missing References line means no references", () => {
    const text = REALISTIC.split("\n")
      .filter((line) => !line.startsWith("References"))
      .join("\n");
    assert.deepEqual(parseNarInfo(text).references, []);
  });

  test("values keep colons and spaces after the first ': '", () => {
    const info = parseNarInfo(REALISTIC.replace("URL: " + NAR, "URL: nar/a: b.nar"));
    assert.equal(info.url, "nar/a: b.nar");
  });

  test("rejects a line without 'key: value'", () => {
    throwsBadArgument(`${REALISTIC}garbage line\n`, /malformed narinfo line/);
    throwsBadArgument(`${REALISTIC}: no key\n`, /malformed narinfo line/);
    throwsBadArgument(`${REALISTIC}Key:novalue\n`, /malformed narinfo line/);
  });

  test("rejects missing required fields, naming them", () => {
    for (const key of ["StorePath", "URL", "NarHash", "NarSize"]) {
      const text = REALISTIC.split("\n")
        .filter((line) => !line.startsWith(`${key}: `))
        .join("\n");
      throwsBadArgument(text, new RegExp(`lacks ${key}`));
    }
    throwsBadArgument("", /lacks StorePath/);
  });

  test("rejects a StorePath that is not a store path", () => {
    throwsBadArgument(REALISTIC.replace(`StorePath: /nix/store/${SELF}`, "StorePath: /etc/passwd"));
    throwsBadArgument(REALISTIC.replace(`StorePath: /nix/store/${SELF}`, `StorePath: /nix/store/${SELF}/../../etc`));
  });

  test("rejects references that are not store path base names", () => {
    for (const reference of ["../../etc/passwd", "/nix/store/" + GLIBC, "short-name", `${GLIBC}/sub`]) {
      throwsBadArgument(REALISTIC.replace(`References: ${GLIBC} ${SELF}`, `References: ${reference}`));
    }
  });

  test("every thrown error is a FerryError, whatever the input", () => {
    for (const text of ["\n\n\n", "StorePath: \n", "\u0000", "StorePath: /nix/store/x\nURL: y\n", REALISTIC.replace(/\n/g, "\r\n")]) {
      try {
        parseNarInfo(text);
      } catch (error) {
        assert.ok(error instanceof FerryError, `${JSON.stringify(text)}: ${String(error)}`);
      }
    }
  });

  test("rejects a NarSize that is not a number", () => {
    throwsBadArgument(REALISTIC.replace("NarSize: 226560", "NarSize: abc"), /NarSize/);
    throwsBadArgument(REALISTIC.replace("FileSize: 51524", "FileSize: -1x"), /FileSize/);
  });
});
