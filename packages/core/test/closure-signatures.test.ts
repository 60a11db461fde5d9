import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import {
  FerryError,
  findUntrustedPath,
  narInfoFingerprint,
  parsePublicKeys,
  parseSignedPathInfos,
  signText,
  toNixBase32,
  type SignedPathInfo,
} from "@ferry/core";
import { fakeStorePath, makeKey, type TestKey } from "./bundle-helpers.js";

// The agent's own signature check (packages/core/src/closure-signatures.ts):
// what it accepts and each way a path fails it.

const trustedKey = makeKey("fleet-1");
const otherKey = makeKey("someone-else-1");
const trusted = parsePublicKeys([trustedKey.publicKey]);

const sriOf = (bytes: Buffer): string => `sha256-${createHash("sha256").update(bytes).digest("base64")}`;
const base32Of = (bytes: Buffer): string => `sha256:${toNixBase32(createHash("sha256").update(bytes).digest())}`;

/** A path as Nix 2.8 prints it (SRI NAR hash), signed over its own fingerprint by `key` unless told otherwise. */
function pathInfo(options: { key?: TestKey | null; references?: string[]; ultimate?: boolean } = {}): SignedPathInfo {
  const nar = randomBytes(64);
  const path = fakeStorePath("pkg");
  const references = options.references ?? [];
  const info: SignedPathInfo = { path, narHash: sriOf(nar), narSize: nar.length, references, signatures: [], ultimate: options.ultimate ?? false };
  const key = options.key === undefined ? trustedKey : options.key;
  if (key) info.signatures.push(signText(key.secret, narInfoFingerprint(path, base32Of(nar), nar.length, references)));
  return info;
}

describe("findUntrustedPath", () => {
  test("a closure signed by a trusted key passes, whatever the order of references", () => {
    const dep = pathInfo();
    const other = pathInfo();
    const top = pathInfo({ references: [other.path, dep.path] });
    assert.equal(findUntrustedPath([top, dep, other], trusted), undefined);
    assert.equal(findUntrustedPath([{ ...top, references: [dep.path, other.path] }], trusted), undefined);
  });

  test("a path with no signature is named, and the first one wins", () => {
    const good = pathInfo();
    const bare = pathInfo({ key: null });
    const bare2 = pathInfo({ key: null });
    assert.deepEqual(findUntrustedPath([good, bare, bare2], trusted), { path: bare.path, reason: "carries no signature" });
  });

  test("Nix's ultimate flag (built here) counts for nothing", () => {
    const local = pathInfo({ key: null, ultimate: true });
    const found = findUntrustedPath([local], trusted);
    assert.equal(found?.path, local.path);
    assert.match(found?.reason ?? "", /no signature .*built or added on this machine/);
  });

  test("a signature by a key the host does not trust", () => {
    const foreign = pathInfo({ key: otherKey });
    assert.deepEqual(findUntrustedPath([foreign], trusted), { path: foreign.path, reason: "is signed only by keys this host does not trust (someone-else-1)" });
  });

  test("a trusted signature made for another path does not cover this one", () => {
    const signed = pathInfo();
    const unsigned = pathInfo({ key: null });
    const copied = { ...unsigned, signatures: signed.signatures };
    assert.match(findUntrustedPath([copied], trusted)?.reason ?? "", /trusted key \(fleet-1\) that does not match/);
  });

  test("other contents: another NAR hash or size under the same signature", () => {
    const signed = pathInfo();
    assert.equal(findUntrustedPath([{ ...signed, narHash: sriOf(randomBytes(64)) }], trusted)?.path, signed.path);
    assert.equal(findUntrustedPath([{ ...signed, narSize: signed.narSize + 1 }], trusted)?.path, signed.path);
  });

  test("references added or removed after signing", () => {
    const dep = pathInfo();
    const top = pathInfo({ references: [dep.path] });
    assert.equal(findUntrustedPath([{ ...top, references: [] }], trusted)?.path, top.path);
    assert.equal(findUntrustedPath([{ ...top, references: [dep.path, fakeStorePath("evil")] }], trusted)?.path, top.path);
  });

  test("malformed signatures are no signatures", () => {
    const signed = pathInfo();
    const raw = signed.signatures[0] as string;
    const cut = raw.slice(0, raw.length - 8);
    for (const signatures of [["garbage"], [":" + raw.slice(raw.indexOf(":") + 1)], [cut], ["fleet-1:"], ["fleet-1:!!!!"]]) {
      assert.equal(findUntrustedPath([{ ...signed, signatures }], trusted)?.path, signed.path, JSON.stringify(signatures));
    }
    // One good signature among bad ones is enough.
    assert.equal(findUntrustedPath([{ ...signed, signatures: ["garbage", cut, raw] }], trusted), undefined);
  });

  test("an unreadable NAR hash fails the path instead of throwing", () => {
    const signed = pathInfo();
    assert.match(findUntrustedPath([{ ...signed, narHash: "md5:abc" }], trusted)?.reason ?? "", /unreadable NAR hash/);
  });

  test("a real Nix 2.8 signature over a real path (nix store sign, nix path-info --json --sigs -r)", () => {
    // Captured from `nix store sign -k sk -r P; nix path-info --json --sigs -r P` with Nix 2.8.0.
    const json =
      '[{"path":"/nix/store/fll6rgmdgdlj4yjz3s1h5w36rln7fp2l-sigtest-top","narHash":"sha256-pgzoxb/rr7d68OtM2mQ35/VyFGIYDYzDZz0UCQKytPE=","narSize":168,' +
      '"references":["/nix/store/zcl0a27m4mqjlqk5zazqkjwc7gxmhlc2-sigtest-dep"],"deriver":"/nix/store/ccv8qyqzq8k39h9bsm4bwwgkanw66fsh-sigtest-top.drv",' +
      '"registrationTime":1795317570,"ultimate":true,"signatures":["test-1:XRr3avfnAARAmJv+kVgloriaIu69usPwgsN1rT3saU3bKRgLprdhm0yGsrPLe2jbfkGzASJw3wXJ+0MrGyttCA=="]},' +
      '{"path":"/nix/store/zcl0a27m4mqjlqk5zazqkjwc7gxmhlc2-sigtest-dep","narHash":"sha256-e9vJ5kB9nT7UCtxk10a+Y2a19Y7maMawKGYAi771cgI=","narSize":120,"references":[],' +
      '"deriver":"/nix/store/sizp8cvvqj50m8b7120x4sfkqrrv66pc-sigtest-dep.drv","registrationTime":1795317570,"ultimate":true,' +
      '"signatures":["test-1:vOibCeGj0bYvYEVpwpHVMxhvlIX6SHeHA6KJiwSZnyhjQT44IzOe6F6jPk6SQfcaBPe7CLhXQz78tLzS20tSDQ=="]}]';
    const infos = parseSignedPathInfos(json);
    assert.equal(infos.length, 2);
    assert.equal(findUntrustedPath(infos, parsePublicKeys(["test-1:F3D3ivmyzLF+t7IsajIBr90m9H3NjSosomOuB8VKI/g="])), undefined);
    assert.equal(findUntrustedPath(infos, trusted)?.path, "/nix/store/fll6rgmdgdlj4yjz3s1h5w36rln7fp2l-sigtest-top");
  });
});

describe("parseSignedPathInfos", () => {
  const ok = { path: fakeStorePath("x"), narHash: "sha256-" + "A".repeat(43) + "=", narSize: 1, references: [] };

  test("absent signatures are an empty list; deriver and other keys are ignored", () => {
    const [info] = parseSignedPathInfos(JSON.stringify([{ ...ok, deriver: "/nix/store/x.drv", registrationTime: 1 }]));
    assert.deepEqual(info?.signatures, []);
    assert.equal(info?.ultimate, false);
  });

  test("anything else than the expected shape is an error, never an unsigned path", () => {
    for (const bad of [
      "not json",
      "{}",
      JSON.stringify([null]),
      JSON.stringify([{ ...ok, path: "/tmp/x" }]),
      JSON.stringify([{ ...ok, narHash: 1 }]),
      JSON.stringify([{ ...ok, narSize: "1" }]),
      JSON.stringify([{ ...ok, references: "none" }]),
      JSON.stringify([{ ...ok, references: ["/etc/passwd"] }]),
      JSON.stringify([{ ...ok, signatures: "k:sig" }]),
      JSON.stringify([{ ...ok, signatures: [1] }]),
      JSON.stringify([{ ...ok, ultimate: "yes" }]),
      JSON.stringify([{ path: ok.path, valid: false }]),
    ]) {
      assert.throws(
        () => parseSignedPathInfos(bad),
        (error: unknown) => error instanceof FerryError,
        bad,
      );
    }
  });
});
