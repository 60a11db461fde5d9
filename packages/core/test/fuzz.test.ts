// Property tests over every core parser that reads bytes from the network or a
// file. The one property: any input either parses or is refused with a
// FerryError; nothing else is thrown, nothing hangs. FERRY_FUZZ_RUNS raises the
// number of cases (npm test runs a bounded default).
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  FerryError,
  TarReader,
  assertHostName,
  assertTag,
  parseHostPort,
  parseManifest,
  parseNarInfo,
  parsePublicKey,
  parseSecretKey,
  parseStorePath,
  verifyBundle,
} from "@ferry/core";
import { chunks, makeBundle, makeKey, removeScratch } from "./bundle-helpers.js";

export const FUZZ_RUNS = Number(process.env["FERRY_FUZZ_RUNS"] ?? 300);

after(removeScratch);

/** Runs `parse` and accepts exactly two outcomes: a value, or a FerryError. */
function parsesOrRefuses<T>(parse: () => T): T | FerryError {
  try {
    return parse();
  } catch (error) {
    if (error instanceof FerryError) return error;
    throw new Error(`threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)} instead of a FerryError`);
  }
}

async function parsesOrRefusesAsync<T>(parse: () => Promise<T>): Promise<T | FerryError> {
  try {
    return await parse();
  } catch (error) {
    if (error instanceof FerryError) return error;
    throw new Error(`threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)} instead of a FerryError`);
  }
}

const BASE32 = "0123456789abcdfghijklmnpqrsvwxyz";
const storeHash = fc.string({ unit: fc.constantFrom(...BASE32), minLength: 32, maxLength: 32 });
const nearStorePath = fc.oneof(
  fc.string({ maxLength: 300 }),
  fc.tuple(storeHash, fc.string({ maxLength: 240 })).map(([hash, name]) => `/nix/store/${hash}-${name}`),
  fc.tuple(storeHash, fc.string({ unit: fc.constantFrom(..."abc-_.+?=/\0\n "), maxLength: 20 })).map(([h, n]) => `/nix/store/${h}-${n}`),
);

describe("fuzz: names and addresses", () => {
  test("store paths: accepted ones are canonical, the rest refused with E_BAD_STORE_PATH", () => {
    fc.assert(
      fc.property(nearStorePath, (text) => {
        const outcome = parsesOrRefuses(() => parseStorePath(text));
        if (outcome instanceof FerryError) assert.equal(outcome.code, "E_BAD_STORE_PATH");
        else {
          assert.match(text, /^\/nix\/store\/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]+$/);
          assert.ok(text.length <= 11 + 32 + 1 + 211);
        }
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  test("host names, tags and host:port never throw anything but a FerryError", () => {
    const text = fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: fc.constantFrom(..."aZ09-.:[]_ "), maxLength: 270 }));
    fc.assert(
      fc.property(text, (value) => {
        const host = parsesOrRefuses(() => assertHostName(value));
        if (!(host instanceof FerryError)) assert.ok(host.length <= 253 && !/[^A-Za-z0-9.-]/.test(host), host);
        parsesOrRefuses(() => assertTag(value));
        const address = parsesOrRefuses(() => parseHostPort(value, "--listen"));
        if (!(address instanceof FerryError)) assert.ok(Number.isInteger(address.port) && address.port >= 0 && address.port <= 65535);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  test("Nix public and secret keys", () => {
    const text = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.tuple(fc.string({ maxLength: 20 }), fc.base64String({ maxLength: 120 })).map(([name, key]) => `${name}:${key}`),
    );
    fc.assert(
      fc.property(text, (value) => {
        parsesOrRefuses(() => parsePublicKey(value));
        parsesOrRefuses(() => parseSecretKey(value));
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});

const VALID_NARINFO = [
  "StorePath: /nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello",
  "URL: nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar.zst",
  "Compression: zstd",
  "FileHash: sha256:1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3",
  "FileSize: 50088",
  "NarHash: sha256:0fl0j6cd8vbzmbq6i0dmhvqnxy0m5lx3ihd3v0i9l7mc7vhkjkfk",
  "NarSize: 226560",
  "References: 0123456789abcdfghijklmnpqrsvwxyz-hello",
  "Sig: cache-1:AAAA",
  "",
].join("\n");

describe("fuzz: narinfo", () => {
  test("arbitrary text and mutations of a valid narinfo parse or are refused", () => {
    const mutated = fc
      .tuple(fc.nat({ max: VALID_NARINFO.length }), fc.nat({ max: 40 }), fc.string({ maxLength: 40 }))
      .map(([at, cut, insert]) => VALID_NARINFO.slice(0, at) + insert + VALID_NARINFO.slice(at + cut));
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 2000 }), mutated), (text) => {
        const info = parsesOrRefuses(() => parseNarInfo(text));
        if (!(info instanceof FerryError)) {
          assert.ok(Number.isSafeInteger(info.narSize) && info.narSize >= 0, `narSize ${info.narSize}`);
          for (const reference of info.references) parseStorePath(reference);
        }
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  test("a huge NarSize is refused rather than read as an unsafe number", () => {
    const text = VALID_NARINFO.replace("NarSize: 226560", "NarSize: 99999999999999999999999");
    const outcome = parsesOrRefuses(() => parseNarInfo(text));
    assert.ok(outcome instanceof FerryError, "a NarSize beyond 2^53 must be refused");
  });
});

describe("fuzz: bundle manifest and archive", () => {
  const key = makeKey("fuzz-deploy-1");

  test("manifest JSON: arbitrary values and mutated manifests parse or are refused", async () => {
    const bundle = await makeBundle(key);
    const manifestText = JSON.stringify(bundle.manifest);
    const mutated = fc
      .tuple(fc.nat({ max: manifestText.length }), fc.nat({ max: 30 }), fc.string({ maxLength: 30 }))
      .map(([at, cut, insert]) => manifestText.slice(0, at) + insert + manifestText.slice(at + cut));
    const json = fc.jsonValue({ maxDepth: 4 }).map((value) => JSON.stringify(value));
    fc.assert(
      fc.property(fc.oneof(mutated, json, fc.string({ maxLength: 500 })), (text) => {
        parsesOrRefuses(() => parseManifest(Buffer.from(text)));
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  test("bundle bytes: flipped, cut and spliced bundles are refused with a bundle error, never accepted", async () => {
    const bundle = await makeBundle(key);
    const bytes = bundle.bytes;
    const damage = fc.oneof(
      fc.record({ kind: fc.constant("flip" as const), at: fc.nat({ max: bytes.length - 1 }), xor: fc.integer({ min: 1, max: 255 }) }),
      fc.record({ kind: fc.constant("cut" as const), at: fc.nat({ max: bytes.length - 1 }) }),
      fc.record({ kind: fc.constant("splice" as const), at: fc.nat({ max: bytes.length - 1 }), insert: fc.uint8Array({ minLength: 1, maxLength: 600 }) }),
    );
    await fc.assert(
      fc.asyncProperty(damage, fc.integer({ min: 1, max: 9000 }), async (change, chunkSize) => {
        let damaged: Buffer;
        if (change.kind === "flip") {
          damaged = Buffer.from(bytes);
          damaged[change.at] = (damaged[change.at] as number) ^ change.xor;
        } else if (change.kind === "cut") damaged = bytes.subarray(0, change.at);
        else damaged = Buffer.concat([bytes.subarray(0, change.at), Buffer.from(change.insert), bytes.subarray(change.at)]);
        const outcome = await parsesOrRefusesAsync(() => verifyBundle(chunks(damaged, chunkSize), { trustedKeys: [key.publicKey] }));
        // A flip inside tar padding or an unused header byte changes nothing that is read: accepted is fine
        // only when the manifest, signature and every hashed file are unchanged.
        if (!(outcome instanceof FerryError)) {
          assert.equal(change.kind, "flip", `a ${change.kind} at ${change.at} was accepted`);
          assert.deepEqual(outcome.manifest, bundle.manifest);
        } else assert.match(outcome.code, /^E_BUNDLE_/);
      }),
      { numRuns: Math.max(20, Math.floor(FUZZ_RUNS / 5)) },
    );
  });

  test("tar reader over arbitrary bytes ends with an entry list or a FerryError", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 4096 }), async (bytes) => {
        await parsesOrRefusesAsync(async () => {
          const reader = new TarReader(chunks(Buffer.from(bytes), 700));
          for (let entries = 0; entries < 64; entries++) {
            const entry = await reader.next();
            if (!entry) return;
            await reader.skip();
          }
        });
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});
