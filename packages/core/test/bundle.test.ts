import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  BundleLedger,
  FerryError,
  MAX_SEQUENCE_AHEAD_MS,
  parseBundlePolicy,
  TarReader,
  findValidSignature,
  narInfoFingerprint,
  parseManifest,
  parsePublicKeys,
  parseSha256,
  readBundleHead,
  tarHeader,
  tarPadding,
  toNixBase32,
  verifyBundle,
  type ErrorCode,
} from "@ferry/core";
import { chunks, fakeStorePath, makeBundle, makeKey, removeScratch, type FakePath, type TestBundle } from "./bundle-helpers.js";

const key = makeKey("site-deploy-1");
const other = makeKey("intruder-1");

async function refused(bytes: Buffer, code: ErrorCode | ErrorCode[], trusted = [key.publicKey], pattern?: RegExp): Promise<FerryError> {
  const codes = Array.isArray(code) ? code : [code];
  try {
    await verifyBundle(chunks(bytes), { trustedKeys: trusted });
  } catch (error) {
    assert.ok(error instanceof FerryError, `expected a FerryError, got ${String(error)}`);
    assert.ok(codes.includes(error.code), `expected ${codes.join("|")}, got ${error.code}: ${error.message}`);
    if (pattern) assert.match(error.message, pattern);
    return error;
  }
  assert.fail(`bundle was accepted; expected ${codes.join("|")}`);
}

/** Byte ranges of each tar entry (header start, data start, size). */
async function layout(bytes: Buffer): Promise<{ name: string; header: number; data: number; size: number }[]> {
  const reader = new TarReader(chunks(bytes));
  const entries = [];
  for (let entry = await reader.next(); entry; entry = await reader.next()) {
    const data = reader.offset;
    entries.push({ name: entry.name, header: data - 512, data, size: entry.size });
    await reader.skip();
  }
  return entries;
}

describe("bundle format", () => {
  let bundle: TestBundle;
  after(removeScratch);

  test("a written bundle verifies and hands every file to the sink in manifest order", async () => {
    bundle = await makeBundle(key);
    const seen: { name: string; sha256: string }[] = [];
    const verified = await verifyBundle(chunks(bundle.bytes, 1000), {
      trustedKeys: [other.publicKey, key.publicKey],
      sink: async (name, _size, body) => {
        const hash = createHash("sha256");
        for await (const chunk of body) hash.update(chunk);
        seen.push({ name, sha256: hash.digest("hex") });
      },
    });
    assert.equal(verified.signer, "site-deploy-1");
    assert.equal(verified.bytes, bundle.bytes.length);
    assert.equal(verified.manifest.sequence, 7);
    assert.equal(verified.manifest.paths.length, 3);
    const expected = [verified.manifest.nixCacheInfo, ...verified.manifest.paths.flatMap((path) => [path.nar, path.narinfo])];
    assert.deepEqual(
      seen,
      expected.map((file) => ({ name: file.file, sha256: file.sha256 })),
    );
    // Dependencies come first: the system, which refers to both others, is last.
    assert.match(verified.manifest.paths[2]?.storePath ?? "", /nixos-system-web-1$/);
  });

  test("files larger than the writer's copy buffers, and many small ones, come out intact", async () => {
    const sizes = [9 * 1024 * 1024 + 7, 1, 4 * 1024 * 1024, 4 * 1024 * 1024 + 1, 0, 12_345];
    const big = await makeBundle(key, {
      sequence: 11,
      mutate: (paths) => {
        const [lib, data, system] = paths as [FakePath, FakePath, FakePath];
        const extra = sizes.map((size, i): FakePath => ({ storePath: fakeStorePath(`blob-${i}`), references: [], size }));
        lib.size = 6 * 1024 * 1024;
        data.size = 3;
        system.references.push(...extra.map((path) => path.storePath));
        paths.splice(0, paths.length, lib, data, ...extra, system);
      },
    });
    const verified = await verifyBundle(chunks(big.bytes, 1 << 20), { trustedKeys: [key.publicKey] });
    assert.equal(verified.manifest.paths.length, 3 + sizes.length);
  });

  test("progress: the archive's bytes so far, never back, up to exactly the file's size announced from the start", async () => {
    const reports: { bytes: number; totalBytes: number }[] = [];
    const big = await makeBundle(key, {
      sequence: 12,
      mutate: (paths) => void ((paths[0] as FakePath).size = 9 * 1024 * 1024),
      onProgress: (done) => reports.push(done),
    });
    assert.ok(reports.length >= 3, `${reports.length} reports`);
    assert.ok(reports.every((report) => report.totalBytes === big.bytes.length));
    assert.ok(reports.every((report, i) => i === 0 || report.bytes >= (reports[i - 1] as { bytes: number }).bytes));
    assert.equal(reports.at(-1)?.bytes, big.bytes.length);
  });

  test("the archive is plain ustar that tar(1) lists", { skip: spawnSync("tar", ["--version"]).status !== 0 ? "no tar" : false }, () => {
    const listed = spawnSync("tar", ["-tf", bundle.file], { encoding: "utf8" });
    assert.equal(listed.status, 0, listed.stderr);
    const names = listed.stdout.split("\n").filter(Boolean);
    assert.deepEqual(names.slice(0, 3), ["manifest.json", "manifest.sig", "nix-cache-info"]);
    assert.equal(names.length, 3 + 2 * 3);
  });

  test("readBundleHead reads the manifest without trusting it", async () => {
    const head = await readBundleHead(new TarReader(chunks(bundle.bytes)));
    assert.deepEqual(parseManifest(head.manifestBytes).hosts, bundle.manifest.hosts);
    assert.match(head.signatureFile, /^site-deploy-1:[A-Za-z0-9+/]{86}==\n$/);
  });

  test("a bundle signed by an untrusted key, or checked with no key, is refused", async () => {
    await refused(bundle.bytes, "E_BUNDLE_SIGNATURE", [other.publicKey], /not signed by a trusted key/);
    await refused(bundle.bytes, "E_BUNDLE_SIGNATURE", []);
  });

  test("every truncation is refused as truncated", async () => {
    const cuts = new Set([0, 1, 511, 512, 1000, bundle.bytes.length - 1024, bundle.bytes.length - 513, bundle.bytes.length - 1]);
    for (let i = 1; i < 40; i++) cuts.add(Math.floor((bundle.bytes.length * i) / 40));
    for (const cut of cuts) {
      if (cut === 0) {
        await refused(bundle.bytes.subarray(0, 0), "E_BUNDLE_TRUNCATED");
        continue;
      }
      await refused(bundle.bytes.subarray(0, cut), "E_BUNDLE_TRUNCATED");
    }
  });

  test("a flipped byte anywhere is refused with a bundle error", async () => {
    const entries = await layout(bundle.bytes);
    const offsets = new Set<number>();
    for (let i = 0; i < 60; i++) offsets.add(Math.floor((bundle.bytes.length * i) / 60));
    for (const entry of entries) [entry.header, entry.header + 130, entry.data, entry.data + entry.size - 1].forEach((o) => offsets.add(o));
    offsets.add(bundle.bytes.length - 1);
    for (const offset of offsets) {
      const copy = Buffer.from(bundle.bytes);
      copy[offset] = (copy[offset] as number) ^ 0x20;
      await refused(copy, ["E_BUNDLE_TAMPERED", "E_BUNDLE_SIGNATURE", "E_BUNDLE_FORMAT", "E_BUNDLE_TRUNCATED"]);
    }
  });

  test("specific damage gets a specific code", async () => {
    const entries = await layout(bundle.bytes);
    const flip = (offset: number): Buffer => {
      const copy = Buffer.from(bundle.bytes);
      copy[offset] = (copy[offset] as number) ^ 0x01;
      return copy;
    };
    const manifest = entries[0] as (typeof entries)[0];
    const nar = entries.find((entry) => entry.name.startsWith("nar/") && entry.size > 10_000) as (typeof entries)[0];
    const narinfo = entries.find((entry) => entry.name.endsWith(".narinfo")) as (typeof entries)[0];
    await refused(flip(manifest.data + 40), "E_BUNDLE_SIGNATURE");
    await refused(flip(nar.data + 5000), "E_BUNDLE_TAMPERED", undefined, /does not match the SHA-256/);
    await refused(flip(narinfo.data + 3), "E_BUNDLE_TAMPERED");
    await refused(flip(nar.header + 2), "E_BUNDLE_TAMPERED", undefined, /checksum/);
  });

  test("appended data and reordered files are refused", async () => {
    await refused(Buffer.concat([bundle.bytes, Buffer.from("extra")]), "E_BUNDLE_TAMPERED", undefined, /after its end-of-archive/);
    const entries = await layout(bundle.bytes);
    // Swap the first two paths' (NAR, narinfo) groups.
    const [a1, a2, b1, b2] = entries.slice(3, 7) as (typeof entries)[0][];
    const end = (entry: (typeof entries)[0]) => entry.data + entry.size + tarPadding(entry.size).length;
    const groupA = bundle.bytes.subarray(a1?.header, end(a2 as (typeof entries)[0]));
    const groupB = bundle.bytes.subarray(b1?.header, end(b2 as (typeof entries)[0]));
    const reordered = Buffer.concat([bundle.bytes.subarray(0, a1?.header), groupB, groupA, bundle.bytes.subarray(end(b2 as (typeof entries)[0]))]);
    assert.equal(reordered.length, bundle.bytes.length);
    await refused(reordered, "E_BUNDLE_TAMPERED", undefined, /reordered/);
    // A file dropped from the middle.
    const dropped = Buffer.concat([bundle.bytes.subarray(0, a1?.header), bundle.bytes.subarray(a2?.header)]);
    await refused(dropped, "E_BUNDLE_TAMPERED");
  });

  test("manifests and NARs swapped between two bundles are refused", async () => {
    const second = await makeBundle(key, { sequence: 8 });
    const first = await layout(bundle.bytes);
    const other2 = await layout(second.bytes);
    const headA = bundle.bytes.subarray(0, first[2]?.header);
    const tailB = second.bytes.subarray(other2[2]?.header);
    await refused(Buffer.concat([headA, tailB]), "E_BUNDLE_TAMPERED");
    // Same names, other contents: put bundle 2's NAR bytes under bundle 1's entry for the same position and size.
    const renamed = Buffer.from(bundle.bytes);
    const narA = first.find((entry) => entry.name.startsWith("nar/")) as (typeof first)[0];
    const narB = other2.find((entry) => entry.name.startsWith("nar/") && entry.size === narA.size) as (typeof first)[0];
    second.bytes.copy(renamed, narA.data, narB.data, narB.data + narB.size);
    await refused(renamed, "E_BUNDLE_TAMPERED", undefined, /SHA-256/);
  });

  test("a narinfo whose Nix signature is forged is refused even under a valid manifest signature", async () => {
    const forged = await makeBundle(key, {
      mutate: (paths) => {
        (paths[1] as (typeof paths)[0]).extra = `Sig: site-deploy-1:${Buffer.alloc(64, 1).toString("base64")}`;
      },
    });
    await refused(forged.bytes, "E_BUNDLE_SIGNATURE", undefined, /no Nix signature by a trusted key/);
  });

  test("a reference outside the closure listing is refused", async () => {
    const dangling = await makeBundle(key, {
      mutate: (paths) => {
        (paths[0] as (typeof paths)[0]).references.push(fakeStorePath("elsewhere"));
      },
    });
    await refused(dangling.bytes, "E_BUNDLE_TAMPERED", undefined, /neither carries nor lists/);
  });

  test("a delta bundle lists omitted paths and may refer to them", async () => {
    const omitted = [{ storePath: fakeStorePath("glibc"), narHash: `sha256:${toNixBase32(Buffer.alloc(32, 3))}`, narSize: 123 }];
    const delta = await makeBundle(key, { omitted, sequence: 9 });
    const verified = await verifyBundle(chunks(delta.bytes), { trustedKeys: [key.publicKey] });
    assert.deepEqual(verified.manifest.omitted, omitted);
  });

  test("another major format version is refused; unknown fields are ignored", async () => {
    const text = bundle.bytes.subarray(512, 512 + bundle.manifest.paths.length * 0 + 100_000).toString("utf8");
    const json = JSON.parse(text.slice(0, text.indexOf("\n}\n") + 2)) as Record<string, unknown>;
    assert.throws(
      () => parseManifest(Buffer.from(JSON.stringify({ ...json, version: 3 }))),
      (error: FerryError) => error.code === "E_BUNDLE_VERSION",
    );
    // Version 2 (streamed, manifest last) is read too; bundle-v2.test.ts covers its layout.
    assert.equal(parseManifest(Buffer.from(JSON.stringify({ ...json, version: 2 }))).version, 2);
    assert.equal(parseManifest(Buffer.from(JSON.stringify({ ...json, minorVersion: 3, futureField: [1] }))).minorVersion, 3);
    assert.throws(
      () => parseManifest(Buffer.from("[]")),
      (error: FerryError) => error.code === "E_BUNDLE_FORMAT",
    );
  });

  test("a file that is not a bundle is refused as such", async () => {
    const header = tarHeader("README", 5, 0);
    await refused(Buffer.concat([header, Buffer.from("hello"), tarPadding(5), Buffer.alloc(1024)]), "E_BUNDLE_FORMAT");
    await refused(Buffer.alloc(2048, 7), "E_BUNDLE_TAMPERED");
  });
});

describe("bundle ledger (replay protection)", () => {
  const NOW = Date.parse("2026-11-22T12:00:00Z");
  const entry = (sequence: number, site?: string) => ({
    sequence,
    manifestSha256: "a".repeat(64),
    createdAt: "x",
    importedAtMs: 1,
    signer: "k",
    hosts: {},
    ...(site === undefined ? {} : { site }),
  });
  const bundle = (sequence: number, site: string | null = null, expiresAt: string | null = null) => ({ sequence, site, expiresAt });
  function scratchLedger(): BundleLedger {
    const dir = mkdtempSync(join(tmpdir(), "ferry-ledger-"));
    after(() => rmSync(dir, { recursive: true, force: true }));
    return new BundleLedger(join(dir, "bundles.json"));
  }
  function refusedWith(code: ErrorCode, check: () => void): void {
    assert.throws(check, (error: FerryError) => {
      assert.equal(error.code, code, error.message);
      return true;
    });
  }

  test("a sequence not above the last one is a replay", () => {
    const ledger = scratchLedger();
    assert.equal(ledger.lastSequence(), 0);
    ledger.assertAcceptable(bundle(1), {}, NOW);
    ledger.record(entry(5));
    refusedWith("E_BUNDLE_REPLAYED", () => ledger.assertAcceptable(bundle(5), {}, NOW));
    refusedWith("E_BUNDLE_REPLAYED", () => ledger.assertAcceptable(bundle(4), {}, NOW));
    ledger.assertAcceptable(bundle(6), {}, NOW);
    refusedWith("E_BUNDLE_REPLAYED", () => ledger.record(entry(5)));
    assert.equal(new BundleLedger(ledger.file).imports.length, 1);
  });

  test("sequences are per site: a high sequence for one site does not block another", () => {
    const ledger = scratchLedger();
    ledger.record(entry(NOW + 1000, "plant-a"));
    ledger.assertAcceptable(bundle(NOW - 1000, "plant-b"), {}, NOW);
    refusedWith("E_BUNDLE_REPLAYED", () => ledger.assertAcceptable(bundle(NOW, "plant-a"), {}, NOW));
    assert.equal(ledger.lastSequence("plant-a"), NOW + 1000);
    assert.equal(ledger.lastSequence("plant-b"), 0);
    assert.equal(ledger.highestSequence(), NOW + 1000);
  });

  test("a named site refuses bundles for another site and bundles naming none", () => {
    const ledger = scratchLedger();
    const policy = { siteName: "plant-a" };
    ledger.assertAcceptable(bundle(1, "plant-a"), policy, NOW);
    refusedWith("E_BUNDLE_WRONG_SITE", () => ledger.assertAcceptable(bundle(1, "plant-b"), policy, NOW));
    refusedWith("E_BUNDLE_WRONG_SITE", () => ledger.assertAcceptable(bundle(1, null), policy, NOW));
  });

  test("an expired bundle is refused, one that expires later is taken", () => {
    const ledger = scratchLedger();
    refusedWith("E_BUNDLE_EXPIRED", () => ledger.assertAcceptable(bundle(1, null, "2026-11-22T11:59:59.000Z"), {}, NOW));
    refusedWith("E_BUNDLE_EXPIRED", () => ledger.assertAcceptable(bundle(1, null, "2026-11-22T12:00:00.000Z"), {}, NOW));
    ledger.assertAcceptable(bundle(1, null, "2026-11-22T12:00:01.000Z"), {}, NOW);
  });

  test("a fresh site with a minimum sequence refuses older bundles", () => {
    const ledger = scratchLedger();
    refusedWith("E_BUNDLE_REPLAYED", () => ledger.assertAcceptable(bundle(NOW - 86_400_000), { minSequence: NOW - 3_600_000 }, NOW));
    ledger.assertAcceptable(bundle(NOW - 3_600_000), { minSequence: NOW - 3_600_000 }, NOW);
  });

  test("a sequence far ahead of the last one and of the clock is refused, so one bundle cannot block all later ones", () => {
    const ledger = scratchLedger();
    refusedWith("E_BUNDLE_SEQUENCE", () => ledger.assertAcceptable(bundle(Number.MAX_SAFE_INTEGER), {}, NOW));
    refusedWith("E_BUNDLE_SEQUENCE", () => ledger.assertAcceptable(bundle(NOW + MAX_SEQUENCE_AHEAD_MS + 1), {}, NOW));
    ledger.assertAcceptable(bundle(NOW + MAX_SEQUENCE_AHEAD_MS), {}, NOW);
    // Small explicit sequences (1, 2, 3, …) stay well inside the bound.
    ledger.assertAcceptable(bundle(3), {}, NOW);
  });

  test("a version-1 ledger's sequence stays a floor for every site", () => {
    const ledger = scratchLedger();
    writeFileSync(ledger.file, JSON.stringify({ version: 1, lastSequence: 500, imports: [entry(500)] }));
    refusedWith("E_BUNDLE_REPLAYED", () => ledger.assertAcceptable(bundle(400, "plant-a"), {}, NOW));
    ledger.assertAcceptable(bundle(501, "plant-a"), {}, NOW);
    ledger.record(entry(501, "plant-a"));
    assert.equal(ledger.lastSequence("plant-a"), 501);
    assert.equal(ledger.lastSequence("plant-b"), 500);
    assert.equal(ledger.imports.length, 2);
  });

  test("bundle policy files: known keys only, checked values", () => {
    assert.deepEqual(parseBundlePolicy({ siteName: "plant-a", minSequence: 7 }, "policy"), { siteName: "plant-a", minSequence: 7 });
    refusedWith("E_BAD_CONFIG", () => parseBundlePolicy({ sitename: "plant-a" }, "policy"));
    refusedWith("E_BAD_CONFIG", () => parseBundlePolicy({ minSequence: 0 }, "policy"));
    refusedWith("E_BAD_HOST_NAME", () => parseBundlePolicy({ siteName: "a/b" }, "policy"));
  });
});

describe("bundle manifest versions", () => {
  test("a 1.0 manifest (no site, no expiry) is still read, as for any site and never expiring", async () => {
    const current = await makeBundle(key);
    const old = { ...current.manifest, minorVersion: 0 } as Record<string, unknown>;
    delete old["site"];
    delete old["expiresAt"];
    const parsed = parseManifest(Buffer.from(JSON.stringify(old)));
    assert.equal(parsed.site, null);
    assert.equal(parsed.expiresAt, null);
    assert.equal(parsed.minorVersion, 0);
  });
});

describe("Nix compatibility", () => {
  test("Nix base32 matches Nix's own encoding", () => {
    const empty = createHash("sha256").update("").digest();
    assert.equal(toNixBase32(empty), "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73");
    assert.deepEqual(parseSha256("sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"), empty);
    assert.deepEqual(parseSha256("sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="), empty);
    assert.equal(parseSha256("sha256:tooshort"), undefined);
  });

  test("signatures made by `nix store sign` verify, and only for what they cover", () => {
    // Made with Nix 2.8: nix-store --generate-binary-cache-key vec-key-1 …; nix store sign; nix copy --to file://…
    const trusted = parsePublicKeys(["vec-key-1:CKNIwG9NPVeZ99EKrazlcoKIKcScc/8BK+Eam9htMoE="]);
    const leaf = "/nix/store/xcwi9pzm8xnydi0ga3millwv3zm6j5yb-bench-leaf-0";
    const withRef = "/nix/store/k9c2ivipygd7rn56hgaj8qvlb3z5c9ck-vec-ref";
    const leafSig = "vec-key-1:Br8xehYW10xZVTSq982QN/d5poub22xuYEVpWF86oIob8BcBuIAzRiE53eKw9OEqZREMAw7x56Gm8F5kLAk1Dg==";
    const refSig = "vec-key-1:z4Bib1TQVrWtKOWwrYJARzIujYzYP1zgJoxndu+3h0i0zG2I0CptkrZvnR97aa+xhoHkWeh42yTSiZH8Hj1bDg==";
    const leafPrint = narInfoFingerprint(leaf, "sha256:1wni62447rg5plyg9y96g90w7km36g47w0pr2hd1j42shlxxddlk", 895424, []);
    const refPrint = narInfoFingerprint(withRef, "sha256:0s5xh03wg8a9f97rll02i85d8wq66f5d1s0p7yhaiz0khvpq89zv", 176, [leaf]);
    assert.equal(findValidSignature([leafSig], leafPrint, trusted), "vec-key-1");
    assert.equal(findValidSignature(["other:AAAA", refSig], refPrint, trusted), "vec-key-1");
    assert.equal(findValidSignature([leafSig], refPrint, trusted), undefined);
    assert.equal(
      findValidSignature([refSig], narInfoFingerprint(withRef, "sha256:0s5xh03wg8a9f97rll02i85d8wq66f5d1s0p7yhaiz0khvpq89zv", 177, [leaf]), trusted),
      undefined,
    );
  });

  test("malformed keys are refused with a clear error", () => {
    assert.throws(
      () => parsePublicKeys(["no-colon"]),
      (error: FerryError) => error.code === "E_BAD_ARGUMENT",
    );
    assert.throws(
      () => parsePublicKeys(["k:AAAA"]),
      (error: FerryError) => error.code === "E_BAD_ARGUMENT",
    );
  });
});
