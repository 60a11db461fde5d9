// The deploy intent codec and verifier (packages/core/src/intent.ts,
// intent-file.ts) and the bundle manifest's intents (format 1.2): one
// canonical text per intent, signatures over exactly that text, each
// mismatch its own code, and any input parsed or refused with a FerryError.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { ActivationMode } from "@ferry/protocol";
import {
  FerryError,
  INTENT_MODES,
  checkIntentTarget,
  checkIntentTime,
  checkRelayedIntent,
  createIntent,
  formatIntent,
  formatIntentsFile,
  intentModeOfWire,
  parseIntent,
  parseIntentsFile,
  parseManifest,
  parsePublicKeys,
  signIntent,
  verifyIntent,
  wireModeOfIntent,
  type DeployIntent,
} from "@ferry/core";
import { fakeStorePath, makeBundle, makeKey, removeScratch } from "./bundle-helpers.js";

const FUZZ_RUNS = Number(process.env["FERRY_FUZZ_RUNS"] ?? 300);
after(removeScratch);

const PATH = "/nix/store/pz5wv3mkbf4bwihvsz8yqydfwb9bfhy5-nixos-system-web-1";
const NOW = 1_700_000_000_000;
const KEY = makeKey("ferry-ci-1");
const TRUSTED = parsePublicKeys([KEY.publicKey]);

const INTENT: DeployIntent = { hostName: "web-1", storePath: PATH, mode: "trial", version: NOW, issuedAtMs: NOW, expiresAtMs: NOW + 3_600_000 };
const TEXT = `ferry-intent-v1;web-1;${PATH};trial;${NOW};${NOW};${NOW + 3_600_000}`;

function code(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof FerryError, `threw ${String(error)}`);
    return error.code;
  }
  return "none";
}

describe("intent text", () => {
  test("is one canonical line, and parses back to the same intent", () => {
    assert.equal(formatIntent(INTENT), TEXT);
    assert.deepEqual(parseIntent(TEXT), INTENT);
  });

  test("anything but the canonical form is refused (E_INTENT_MALFORMED)", () => {
    const variants = [
      TEXT.replace("ferry-intent-v1", "ferry-intent-v2"),
      `${TEXT}\n`,
      ` ${TEXT}`,
      `${TEXT};extra`,
      TEXT.replace(`;${NOW};`, `;0${NOW};`),
      TEXT.replace(`;${NOW};`, `;+${NOW};`),
      TEXT.replace(";trial;", ";TRIAL;"),
      TEXT.replace(";trial;", ";reboot;"),
      TEXT.replace(";web-1;", ";web_1;"),
      TEXT.replace(";web-1;", ";../etc;"),
      TEXT.replace(PATH, "/tmp/evil"),
      TEXT.replace(`;${NOW};${NOW};`, `;0;${NOW};`),
      `ferry-intent-v1;web-1;${PATH};trial;${NOW};${NOW};${NOW}`,
      `ferry-intent-v1;web-1;${PATH};trial;99999999999999999;${NOW};${NOW + 1}`,
      "x".repeat(5000),
      "",
    ];
    for (const text of variants)
      assert.equal(
        code(() => parseIntent(text)),
        "E_INTENT_MALFORMED",
        text.slice(0, 120),
      );
  });

  test("every mode has a name on the wire or is the host's default; a dry-activate intent deploys nothing", () => {
    for (const mode of INTENT_MODES) {
      if (mode === "dry-activate")
        assert.equal(
          code(() => wireModeOfIntent(mode)),
          "E_INTENT_MODE_MISMATCH",
        );
      else assert.equal(intentModeOfWire(wireModeOfIntent(mode)), mode);
    }
    assert.equal(intentModeOfWire(ActivationMode.ACTIVATION_MODE_UNSPECIFIED), "default");
    assert.equal(intentModeOfWire(ActivationMode.ACTIVATION_MODE_BOOT), "boot");
  });

  test("createIntent: version defaults to the signing time; a non-positive lifetime is refused", () => {
    const intent = createIntent({ hostName: "web-1", storePath: PATH, mode: "default", nowMs: NOW, expiresInMs: 1000 });
    assert.deepEqual([intent.version, intent.issuedAtMs, intent.expiresAtMs], [NOW, NOW, NOW + 1000]);
    assert.equal(createIntent({ hostName: "web-1", storePath: PATH, mode: "default", nowMs: NOW, expiresInMs: 1000, version: 7 }).version, 7);
    assert.equal(
      code(() => createIntent({ hostName: "web-1", storePath: PATH, mode: "default", nowMs: NOW, expiresInMs: 0 })),
      "E_BAD_ARGUMENT",
    );
  });

  test("property: any valid intent round-trips through its text", () => {
    const arbitraryIntent = fc.record({
      hostName: fc.constantFrom("a", "web-1", "db.eu-west.example", "x".repeat(63)),
      storePath: fc.constantFrom(PATH, "/nix/store/0000000000000000000000000000000a-x"),
      mode: fc.constantFrom(...INTENT_MODES),
      version: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      issuedAtMs: fc.integer({ min: 0, max: 2 ** 50 }),
      lifetime: fc.integer({ min: 1, max: 2 ** 40 }),
    });
    fc.assert(
      fc.property(arbitraryIntent, ({ lifetime, ...fields }) => {
        const intent = { ...fields, expiresAtMs: fields.issuedAtMs + lifetime };
        assert.deepEqual(parseIntent(formatIntent(intent)), intent);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  test("fuzz: any text, or a mutation of a valid one, parses or is refused with E_INTENT_MALFORMED", () => {
    const mutated = fc.tuple(fc.nat({ max: TEXT.length }), fc.string({ maxLength: 4 })).map(([at, insert]) => TEXT.slice(0, at) + insert + TEXT.slice(at + 1));
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 400 }), mutated), (text) => {
        try {
          assert.equal(formatIntent(parseIntent(text)), text);
        } catch (error) {
          if (!(error instanceof FerryError) || error.code !== "E_INTENT_MALFORMED") throw error;
        }
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describe("intent signatures", () => {
  const signed = signIntent(INTENT, [KEY.secret]);

  test("a signature by a trusted key over the exact text verifies and names its key", () => {
    assert.equal(signed.intent, TEXT);
    assert.deepEqual(verifyIntent(signed, TRUSTED), { intent: INTENT, signer: "ferry-ci-1" });
  });

  test("signed by an untrusted key, or a key of the same name: E_INTENT_SIGNATURE", () => {
    assert.equal(
      code(() => verifyIntent(signIntent(INTENT, [makeKey("intruder").secret]), TRUSTED)),
      "E_INTENT_SIGNATURE",
    );
    assert.equal(
      code(() => verifyIntent(signIntent(INTENT, [makeKey("ferry-ci-1").secret]), TRUSTED)),
      "E_INTENT_SIGNATURE",
    );
  });

  test("a signature over another intent, or text altered after signing: E_INTENT_SIGNATURE", () => {
    const other = signIntent({ ...INTENT, version: NOW + 1 }, [KEY.secret]);
    assert.equal(
      code(() => verifyIntent({ intent: TEXT, signatures: other.signatures }, TRUSTED)),
      "E_INTENT_SIGNATURE",
    );
    assert.equal(
      code(() => verifyIntent({ ...signed, intent: TEXT.replace(";trial;", ";boot;") }, TRUSTED)),
      "E_INTENT_SIGNATURE",
    );
  });

  test("a host with no intent key cannot accept a signed intent: E_INTENT_SIGNATURE", () => {
    assert.equal(
      code(() => verifyIntent(signed, new Map())),
      "E_INTENT_SIGNATURE",
    );
  });

  test("malformed signatures, or too many, are refused before any check: E_INTENT_MALFORMED", () => {
    assert.equal(
      code(() => verifyIntent({ ...signed, signatures: ["ferry-ci-1:AAAA"] }, TRUSTED)),
      "E_INTENT_MALFORMED",
    );
    assert.equal(
      code(() => verifyIntent({ ...signed, signatures: Array(9).fill(signed.signatures[0]) }, TRUSTED)),
      "E_INTENT_MALFORMED",
    );
  });

  test("a second, valid signature among bad ones is enough (key rotation)", () => {
    const both = { intent: TEXT, signatures: [...signIntent(INTENT, [makeKey("old").secret]).signatures, ...signed.signatures] };
    assert.equal(verifyIntent(both, TRUSTED).signer, "ferry-ci-1");
  });
});

describe("intent checks", () => {
  const target = { hostName: "web-1", storePath: PATH, mode: "trial" } as const;

  test("target: another host, path or mode each has its own code", () => {
    assert.equal(
      code(() => checkIntentTarget(INTENT, target)),
      "none",
    );
    assert.equal(
      code(() => checkIntentTarget(INTENT, { ...target, hostName: "web-2" })),
      "E_INTENT_WRONG_HOST",
    );
    assert.equal(
      code(() => checkIntentTarget(INTENT, { ...target, storePath: fakeStorePath("x") })),
      "E_INTENT_PATH_MISMATCH",
    );
    assert.equal(
      code(() => checkIntentTarget(INTENT, { ...target, mode: "boot" })),
      "E_INTENT_MODE_MISMATCH",
    );
  });

  test("time: expired at expiresAt, issued too far ahead, a version too far ahead", () => {
    assert.equal(
      code(() => checkIntentTime(INTENT, NOW + 1)),
      "none",
    );
    assert.equal(
      code(() => checkIntentTime(INTENT, INTENT.expiresAtMs)),
      "E_INTENT_EXPIRED",
    );
    assert.equal(
      code(() => checkIntentTime(INTENT, NOW - 10 * 60_000)),
      "E_INTENT_EXPIRED",
    );
    assert.equal(
      code(() => checkIntentTime(INTENT, NOW - 60_000)),
      "none",
    );
    assert.equal(
      code(() => checkIntentTime({ ...INTENT, version: NOW + 31 * 86_400_000 }, NOW)),
      "E_INTENT_VERSION",
    );
  });

  test("what a relay checks without keys: form, target, time", () => {
    const signed = signIntent(INTENT, [KEY.secret]);
    assert.deepEqual(checkRelayedIntent(signed, target, NOW), INTENT);
    assert.equal(
      code(() => checkRelayedIntent(signed, { ...target, mode: "default" }, NOW)),
      "E_INTENT_MODE_MISMATCH",
    );
    assert.equal(
      code(() => checkRelayedIntent(signed, target, NOW + 7_200_000)),
      "E_INTENT_EXPIRED",
    );
  });
});

describe("intents files", () => {
  const a = signIntent(INTENT, [KEY.secret]);
  const b = signIntent({ ...INTENT, hostName: "web-2" }, [KEY.secret]);

  test("round-trip, in the documented shape", () => {
    const text = formatIntentsFile([a, b]);
    assert.deepEqual(JSON.parse(text), { format: "ferry-intents", version: 1, intents: [a, b] });
    assert.deepEqual(parseIntentsFile(text, "f.json"), [a, b]);
  });

  test("refused: not JSON, another format or version, no intent, a bad intent, two for one host", () => {
    const file = (intents: unknown[], extra: Record<string, unknown> = {}) => JSON.stringify({ format: "ferry-intents", version: 1, intents, ...extra });
    assert.equal(
      code(() => parseIntentsFile("{", "f")),
      "E_INTENT_MALFORMED",
    );
    assert.equal(
      code(() => parseIntentsFile(file([a], { format: "other" }), "f")),
      "E_INTENT_MALFORMED",
    );
    assert.equal(
      code(() => parseIntentsFile(file([a], { version: 2 }), "f")),
      "E_INTENT_MALFORMED",
    );
    assert.equal(
      code(() => parseIntentsFile(file([]), "f")),
      "E_INTENT_MALFORMED",
    );
    assert.equal(
      code(() => parseIntentsFile(file([{ intent: "nope", signatures: [] }]), "f")),
      "E_INTENT_MALFORMED",
    );
    assert.equal(
      code(() => parseIntentsFile(file([a, signIntent({ ...INTENT, version: NOW + 5 }, [KEY.secret])]), "f")),
      "E_BAD_ARGUMENT",
    );
  });
});

describe("bundle manifests carry intents (format 1.2), and 1.0/1.1 manifests are still read", () => {
  test("intents are parsed; an intent for a host the bundle has no system for is refused", async () => {
    const { manifest, bytes } = await makeBundle(KEY);
    assert.equal(`${manifest.version}.${manifest.minorVersion}`, "1.2");
    const raw = JSON.parse(bytes.subarray(512, 512 + manifestLength(bytes)).toString("utf8")) as Record<string, unknown>;
    const system = manifest.hosts["web-1"] as string;
    const intent = signIntent({ ...INTENT, storePath: system }, [KEY.secret]);
    assert.deepEqual(parseManifest(Buffer.from(JSON.stringify({ ...raw, intents: [intent] }))).intents, [intent]);
    const stranger = signIntent({ ...INTENT, hostName: "web-9" }, [KEY.secret]);
    assert.throws(() => parseManifest(Buffer.from(JSON.stringify({ ...raw, intents: [stranger] }))), { code: "E_BUNDLE_FORMAT" });
    assert.throws(() => parseManifest(Buffer.from(JSON.stringify({ ...raw, intents: [{ intent: "x", signatures: [] }] }))), { code: "E_BUNDLE_FORMAT" });

    const older = Object.fromEntries(Object.entries(raw).filter(([name]) => name !== "intents"));
    for (const minorVersion of [0, 1]) assert.deepEqual(parseManifest(Buffer.from(JSON.stringify({ ...older, minorVersion }))).intents, []);
  });
});

/** The size of the manifest, the bundle's first tar entry (size field: 12 octal digits at offset 124). */
function manifestLength(bytes: Buffer): number {
  return parseInt(bytes.subarray(124, 136).toString("ascii").replace(/\0.*$/, "").trim(), 8);
}
