// Air-gapped sites: a bundle made from the build machine's store is imported
// into a site controller (the fleet) whose hosts then deploy it; a delta
// bundle carries only what the site lacks; a host with no controller applies
// a bundle on its own; every damaged, replayed or untrusted bundle is refused
// and leaves the cache, the ledger and the hosts' desired systems unchanged.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { Fleet, type SigningKey } from "../harness/fleet.js";
import { buildFixtureSystem } from "../harness/fixtures.js";
import { FERRY_BIN } from "../harness/paths.js";
import { mustExec, waitFor } from "../harness/exec.js";
import { hostStatus, settled } from "../harness/status.js";

interface ErrorJson {
  error: { code: string; message: string };
}

describe("air-gapped bundles", { skip: process.getuid?.() !== 0 ? "needs root for network namespaces" : false }, () => {
  let fleet: Fleet;
  let intruder: SigningKey;
  const sys: Record<string, string> = {};
  const file = (name: string): string => join(fleet.dir, name);

  async function create(name: string, hosts: Record<string, string>, extra: string[] = [], key = fleet.key): Promise<string> {
    writeFileSync(file(`${name}.hosts.json`), JSON.stringify({ hosts }));
    await fleet.mustCli(["bundle", "create", "--manifest", file(`${name}.hosts.json`), "-o", file(name), "--signing-key-file", key.secretFile, ...extra]);
    return file(name);
  }

  function importArgs(bundle: string, ...extra: string[]): string[] {
    return ["bundle", "import", bundle, "--trusted-key", fleet.key.publicKey, "--json", ...extra];
  }

  /** What a refused import must not change. */
  function siteSnapshot(): string {
    const cache = join(fleet.controller.dataDir, "cache");
    // Dot-names included: a staging directory (.bundle-*) or upload temp file left behind is a trace too.
    const files = [...readdirSync(cache), ...readdirSync(join(cache, "nar")).map((name) => `nar/${name}`)].sort();
    return JSON.stringify({ files, ledger: ledgerRows() });
  }

  /** The site's bundle ledger, read from the controller's database (WAL: a reader beside the running controller). */
  function ledgerRows(): { site: string; sequence: number }[] {
    const db = new Database(join(fleet.controller.dataDir, "state.sqlite"), { readonly: true, fileMustExist: true });
    try {
      return db.prepare("SELECT site, sequence FROM bundle_imports ORDER BY site, sequence").all() as { site: string; sequence: number }[];
    } finally {
      db.close();
    }
  }

  before(async () => {
    fleet = await Fleet.start("bundle");
    intruder = await fleet.generateKey("intruder-1");
    writeFileSync(join(fleet.controller.dataDir, "bundle-trusted-keys"), `# keys whose bundles this site accepts\n${fleet.key.publicKey}\n`);
    await fleet.addHost("web-1");
    await fleet.addHost("web-2");
    await fleet.addHost("solo", { start: false });
    for (const [name, host, generation, behaviour] of [
      ["web1a", "web-1", 1, "ok"],
      ["web2a", "web-2", 1, "ok"],
      ["web1b", "web-1", 2, "ok"],
      ["web2b", "web-2", 2, "ok"],
      ["soloa", "solo", 1, "ok"],
      ["solob", "solo", 2, "fail-activation"],
      ["web1c", "web-1", 3, "ok"],
      ["web2c", "web-2", 3, "ok"],
      ["web1d", "web-1", 4, "fail-activation"],
      ["web2d", "web-2", 4, "ok"],
      ["web2e", "web-2", 5, "ok"],
      ["web2f", "web-2", 6, "ok"],
      ["web2g", "web-2", 7, "ok"],
    ] as const) {
      sys[name] = await buildFixtureSystem(host, generation, behaviour);
    }
    await waitFor("web-1 and web-2 online", async () => ((await hostStatus(fleet, "web-1")).online && (await hostStatus(fleet, "web-2")).online) || undefined);
  });

  after(async () => {
    await fleet?.close();
  });

  test("a bundle imported with --deploy reaches the site's hosts", async () => {
    const bundle = await create("b1.ferry", { "web-1": sys["web1a"] as string, "web-2": sys["web2a"] as string });
    const verified = await fleet.mustCli(["bundle", "verify", bundle, "--trusted-key", fleet.key.publicKey, "--json"]);
    assert.equal(verified.json<{ valid: boolean; paths: number }>().paths, 4);
    const inspected = (await fleet.mustCli(["bundle", "inspect", bundle, "--json"])).json<{ hosts: Record<string, string>; signers: string[] }>();
    assert.deepEqual(inspected.signers, [fleet.key.name]);
    assert.equal(inspected.hosts["web-2"], sys["web2a"]);
    const imported = await fleet.cli(importArgs(bundle, "--deploy"));
    assert.equal(imported.code, 0, imported.stdout + imported.stderr);
    assert.match(imported.json<{ deploymentId: string }>().deploymentId, /^d-/);
    for (const [host, expected] of [
      ["web-1", sys["web1a"]],
      ["web-2", sys["web2a"]],
    ] as const) {
      const status = await settled(fleet, host);
      assert.equal(status.phase, "active", JSON.stringify(status));
      assert.equal(fleet.host(host).currentSystem(), expected);
    }
  });

  test("a delta bundle made --since the site's inventory carries only the new paths", async () => {
    await fleet.mustCli(["site", "inventory", "-o", file("inventory.json")]);
    const inventory = JSON.parse(readFileSync(file("inventory.json"), "utf8")) as { storePaths: string[]; lastSequence: number };
    assert.ok(inventory.storePaths.includes(sys["web2a"] as string));
    assert.ok(inventory.lastSequence > 0);
    // --format 1: the layout older sites read, still made and still imported.
    const bundle = await create("b2.ferry", { "web-1": sys["web1b"] as string, "web-2": sys["web2a"] as string }, [
      "--since",
      file("inventory.json"),
      "--format",
      "1",
    ]);
    const inspected = (await fleet.mustCli(["bundle", "inspect", bundle, "--json"])).json<{ paths: number; omitted: number; version: number }>();
    assert.deepEqual([inspected.paths, inspected.omitted], [2, 2], "only web-1's new system and its package travel");
    const imported = await fleet.cli(importArgs(bundle, "--deploy"));
    assert.equal(imported.code, 0, imported.stdout + imported.stderr);
    assert.equal((await settled(fleet, "web-1")).phase, "active");
    assert.equal(fleet.host("web-1").currentSystem(), sys["web1b"]);
    assert.equal(fleet.host("web-2").currentSystem(), sys["web2a"]);
  });

  test("damaged, swapped, replayed and untrusted bundles are refused and leave no trace", async () => {
    const good = await create("b3.ferry", { "web-2": sys["web2b"] as string });
    const bytes = readFileSync(good);
    const flipped = Buffer.from(bytes);
    // Inside a NAR (version 2 keeps its manifest at the end).
    flipped[Math.floor(bytes.length / 2)] = (flipped[Math.floor(bytes.length / 2)] as number) ^ 0x40;
    writeFileSync(file("flipped.ferry"), flipped);
    writeFileSync(file("truncated.ferry"), bytes.subarray(0, Math.floor(bytes.length * 0.7)));
    // b1's files under b3's manifest and signature (version 2: they come last).
    const b1 = readFileSync(file("b1.ferry"));
    const manifestAt = (buffer: Buffer): number => {
      let offset = 0;
      while (buffer.toString("ascii", offset, offset + 13) !== "manifest.json") {
        const size = parseInt(buffer.toString("ascii", offset + 124, offset + 135), 8);
        offset += 512 + Math.ceil(size / 512) * 512;
      }
      return offset;
    };
    writeFileSync(file("swapped.ferry"), Buffer.concat([b1.subarray(0, manifestAt(b1)), bytes.subarray(manifestAt(bytes))]));
    const untrusted = await create("untrusted.ferry", { "web-2": sys["web2b"] as string }, [], intruder);
    const before = siteSnapshot();
    const serials = JSON.stringify([(await hostStatus(fleet, "web-1")).desiredSerial, (await hostStatus(fleet, "web-2")).desiredSerial]);
    const cases: [string, string[], string][] = [
      ["flipped byte", importArgs(file("flipped.ferry"), "--deploy"), "E_BUNDLE_TAMPERED"],
      ["truncated", importArgs(file("truncated.ferry"), "--deploy"), "E_BUNDLE_TRUNCATED"],
      ["manifest and NARs swapped", importArgs(file("swapped.ferry"), "--deploy"), "E_BUNDLE_TAMPERED"],
      ["replayed", importArgs(file("b1.ferry"), "--deploy"), "E_BUNDLE_REPLAYED"],
      ["replayed delta", importArgs(file("b2.ferry")), "E_BUNDLE_REPLAYED"],
      // The operator's CLI is told to trust the intruder; the controller is not.
      ["signed by a key the site does not trust", [...importArgs(untrusted, "--deploy"), "--trusted-key", intruder.publicKey], "E_BUNDLE_SIGNATURE"],
      ["verified locally without the signer's key", importArgs(untrusted), "E_BUNDLE_SIGNATURE"],
      // The controller's own single-pass verification, with no check on the operator's side.
      ["flipped byte, controller only", importArgs(file("flipped.ferry"), "--deploy", "--no-local-verify"), "E_BUNDLE_TAMPERED"],
      ["truncated, controller only", importArgs(file("truncated.ferry"), "--deploy", "--no-local-verify"), "E_BUNDLE_TRUNCATED"],
      ["swapped, controller only", importArgs(file("swapped.ferry"), "--no-local-verify"), "E_BUNDLE_TAMPERED"],
      ["replayed, controller only", importArgs(file("b1.ferry"), "--no-local-verify"), "E_BUNDLE_REPLAYED"],
      ["untrusted, controller only", importArgs(untrusted, "--deploy", "--no-local-verify"), "E_BUNDLE_SIGNATURE"],
      // The two-pass import older controllers need.
      ["flipped byte, two passes", importArgs(file("flipped.ferry"), "--two-pass"), "E_BUNDLE_TAMPERED"],
      ["untrusted, two passes", [...importArgs(untrusted), "--trusted-key", intruder.publicKey, "--two-pass"], "E_BUNDLE_SIGNATURE"],
    ];
    for (const [what, args, code] of cases) {
      const result = await fleet.cli(args);
      assert.equal(result.code, 1, `${what}: ${result.stdout}${result.stderr}`);
      assert.equal(result.json<ErrorJson>().error.code, code, what);
      assert.equal(siteSnapshot(), before, `${what} left a trace in the cache or ledger`);
    }
    assert.equal(JSON.stringify([(await hostStatus(fleet, "web-1")).desiredSerial, (await hostStatus(fleet, "web-2")).desiredSerial]), serials);
    // The intact bundle still imports: the refusals consumed nothing.
    const imported = await fleet.cli(importArgs(good));
    assert.equal(imported.code, 0, imported.stdout + imported.stderr);
    assert.equal(imported.json<{ locallyVerified: boolean }>().locallyVerified, true);
    assert.notEqual(siteSnapshot(), before);
    assert.deepEqual(siteSnapshot().match(/\.(bundle|upload)-/g), null, "no staging directory or temp file stays behind");
    // Both other ways in still publish: the controller alone, and the two-pass import.
    const web1 = { "web-1": sys["web1b"] as string };
    const alone = await fleet.cli(importArgs(await create("b4.ferry", web1), "--no-local-verify"));
    assert.equal(alone.code, 0, alone.stdout + alone.stderr);
    assert.equal(alone.json<{ locallyVerified: boolean }>().locallyVerified, false);
    const twoPass = await fleet.cli(importArgs(await create("b5.ferry", web1), "--two-pass"));
    assert.equal(twoPass.code, 0, twoPass.stdout + twoPass.stderr);
    assert.equal(ledgerRows().length, 5);
  });

  test("a site with a name refuses bundles for another site, naming none, or expired", async () => {
    const policy = join(fleet.controller.dataDir, "bundle-policy.json");
    writeFileSync(policy, JSON.stringify({ siteName: "plant-a" }));
    try {
      const web2 = { "web-2": sys["web2b"] as string };
      const before = siteSnapshot();
      const cases: [string, string, string][] = [
        ["names no site", await create("s1.ferry", web2), "E_BUNDLE_WRONG_SITE"],
        ["for another site", await create("s2.ferry", web2, ["--site", "plant-b"]), "E_BUNDLE_WRONG_SITE"],
        ["expired", await create("s3.ferry", web2, ["--site", "plant-a", "--expires-in", "1s"]), "E_BUNDLE_EXPIRED"],
      ];
      await new Promise((resolve) => setTimeout(resolve, 1500));
      for (const [what, bundle, code] of cases) {
        const result = await fleet.cli(importArgs(bundle));
        assert.equal(result.code, 1, `${what}: ${result.stdout}${result.stderr}`);
        assert.equal(result.json<ErrorJson>().error.code, code, what);
        assert.equal(siteSnapshot(), before, `${what} left a trace`);
      }
      const inspected = (await fleet.mustCli(["bundle", "inspect", file("s2.ferry"), "--json"])).json<{ site: string; expiresAt: string }>();
      assert.equal(inspected.site, "plant-b");
      assert.ok(Date.parse(inspected.expiresAt) > Date.now() + 29 * 86_400_000, "bundles expire after 30 days by default");
      const good = await fleet.cli(importArgs(await create("s4.ferry", web2, ["--site", "plant-a"])));
      assert.equal(good.code, 0, good.stdout + good.stderr);
    } finally {
      rmSync(policy, { force: true });
    }
  });

  test("a host with no controller applies a bundle itself, refuses damage and replays, and rolls back a bad system", async () => {
    const solo = fleet.host("solo");
    // A lone host's minimal configuration: no controller URL, token file or substituter to invent.
    const config = join(solo.dir, "standalone.json");
    writeFileSync(config, JSON.stringify({ hostName: "solo", trustedPublicKeys: [fleet.key.publicKey], stateDir: solo.stateDir }));
    const agentRun = await solo.run([process.execPath, FERRY_BIN, "agent", "--config", config], 30_000);
    assert.notEqual(agentRun.code, 0, "ferry agent needs a controller");
    assert.match(agentRun.stderr, /E_BAD_CONFIG/);
    assert.match(agentRun.stderr, /missing "controllerUrl", "tokenFile", "substituters"/);
    const apply = (bundle: string, result: string) =>
      solo.run([process.execPath, FERRY_BIN, "agent", "apply-bundle", bundle, "--config", config, "--result", result, "--json"], 60_000);
    const good = await create("solo1.ferry", { solo: sys["soloa"] as string, "web-1": sys["web1b"] as string });
    const damaged = Buffer.from(readFileSync(good));
    damaged[Math.floor(damaged.length / 2)] = (damaged[Math.floor(damaged.length / 2)] as number) ^ 0x01;
    writeFileSync(file("solo-damaged.ferry"), damaged);

    const refused = await apply(file("solo-damaged.ferry"), file("r0.json"));
    assert.equal(refused.code, 1, refused.stdout + refused.stderr);
    assert.equal((JSON.parse(refused.stdout) as ErrorJson).error.code, "E_BUNDLE_TAMPERED");
    assert.notEqual((await solo.run(["nix-store", "--check-validity", sys["soloa"] as string])).code, 0, "nothing reached the host's store");
    assert.equal(solo.currentSystem(), "");

    const applied = await apply(good, file("r1.json"));
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    const report = JSON.parse(readFileSync(file("r1.json"), "utf8")) as { success: boolean; phase: string; currentSystem: string; hostName: string };
    assert.deepEqual([report.success, report.phase, report.hostName, report.currentSystem], [true, "active", "solo", sys["soloa"]]);
    assert.equal(solo.currentSystem(), sys["soloa"]);
    assert.equal(solo.profileSystem(), sys["soloa"]);
    assert.deepEqual(solo.switchCalls(), [
      ["test", sys["soloa"]],
      ["boot", sys["soloa"]],
    ]);

    copyFileSync(good, file("solo1-again.ferry"));
    const replayed = await apply(file("solo1-again.ferry"), file("r2.json"));
    assert.equal((JSON.parse(replayed.stdout) as ErrorJson).error.code, "E_BUNDLE_REPLAYED");

    const bad = await create("solo2.ferry", { solo: sys["solob"] as string });
    const failed = await apply(bad, file("r3.json"));
    assert.equal(failed.code, 1, failed.stdout + failed.stderr);
    const failure = JSON.parse(readFileSync(file("r3.json"), "utf8")) as { success: boolean; phase: string; errorCode: string; currentSystem: string };
    assert.deepEqual([failure.success, failure.phase, failure.errorCode], [false, "rolled-back", "E_ACTIVATION_FAILED"]);
    assert.equal(solo.currentSystem(), sys["soloa"], "the previous system runs again");
  });

  test("a bundle imported with --rollout drives a canary rollout at the site; a failing canary stops it; a bad policy changes nothing", async () => {
    interface RolloutJson {
      id: string;
      state: string;
      reason: string;
      waveCount: number;
      hosts: { name: string; wave: number; state: string }[];
    }
    // --wait exits 1 on an aborted rollout; its JSON is read either way.
    const status = async (id: string): Promise<RolloutJson> =>
      (await fleet.cli(["rollout", "status", id, "--wait", "--timeout", "120", "--json"], 150_000)).json<{ rollout: RolloutJson }>().rollout;
    const policy = ["--rollout", "--canary", "1", "--batch", "1"];

    const refusedBundle = await create("r0.ferry", { "web-1": sys["web1c"] as string, "web-2": sys["web2c"] as string });
    const before = siteSnapshot();
    const refused = await fleet.cli(importArgs(refusedBundle, ...policy, "--failure-threshold", "150%"));
    assert.notEqual(refused.code, 0, refused.stdout + refused.stderr);
    assert.equal((JSON.parse(refused.stdout) as ErrorJson).error.code, "E_BAD_ARGUMENT");
    assert.match(refused.stdout, /cannot exceed 100%/);
    assert.equal(siteSnapshot(), before, "a refused policy leaves the cache and the ledger as they were");

    const good = await fleet.cli(importArgs(refusedBundle, ...policy));
    assert.equal(good.code, 0, good.stdout + good.stderr);
    const imported = good.json<{ rolloutId: string; deployed: boolean }>();
    assert.match(imported.rolloutId, /^r-/);
    const done = await status(imported.rolloutId);
    assert.equal(done.state, "completed", JSON.stringify(done));
    assert.equal(done.waveCount, 2, "a canary wave, then a batch of one");
    assert.equal(fleet.host("web-1").currentSystem(), sys["web1c"]);
    assert.equal(fleet.host("web-2").currentSystem(), sys["web2c"]);

    const bad = await create("r1.ferry", { "web-1": sys["web1d"] as string, "web-2": sys["web2d"] as string });
    const started = await fleet.cli(importArgs(bad, ...policy));
    assert.equal(started.code, 0, started.stdout + started.stderr);
    const aborted = await status(started.json<{ rolloutId: string }>().rolloutId);
    assert.equal(aborted.state, "aborted", JSON.stringify(aborted));
    assert.match(aborted.reason, /canary failed: web-1 E_ACTIVATION_FAILED/);
    assert.equal(fleet.host("web-1").currentSystem(), sys["web1c"], "the canary rolled back");
    assert.equal(fleet.host("web-2").currentSystem(), sys["web2c"], "the rest of the site was never activated");
    assert.equal(
      fleet
        .host("web-2")
        .switchCalls()
        .filter(([, system]) => system === sys["web2d"]).length,
      0,
    );
  });

  test("a file cache Nix wrote (nix copy --to file://DIR, xz) becomes a signed bundle without the store, and deploys", async () => {
    const cache = file("nix-copy-cache");
    await mustExec(["nix", "--extra-experimental-features", "nix-command", "copy", "--to", `file://${cache}`, sys["web2e"] as string], { timeoutMs: 120_000 });
    writeFileSync(file("fc.hosts.json"), JSON.stringify({ hosts: { "web-2": sys["web2e"] } }));
    const made = await fleet.cli([
      "bundle",
      "create",
      "--manifest",
      file("fc.hosts.json"),
      "-o",
      file("fc.ferry"),
      "--signing-key-file",
      fleet.key.secretFile,
      "--from-file-cache",
      cache,
      "--json",
    ]);
    assert.equal(made.code, 0, made.stdout + made.stderr);
    const inspected = (await fleet.mustCli(["bundle", "inspect", file("fc.ferry"), "--json"])).json<{
      formatVersion: string;
      closure: { nar: { file: string } }[];
    }>();
    assert.equal(inspected.formatVersion, "1.2");
    assert.ok(
      inspected.closure.every((path) => path.nar.file.endsWith(".nar.xz")),
      "Nix's own xz files are carried as they are",
    );
    const imported = await fleet.cli(importArgs(file("fc.ferry"), "--deploy"));
    assert.equal(imported.code, 0, imported.stdout + imported.stderr);
    await waitFor(
      "web-2 running the system from the file cache",
      async () => (fleet.host("web-2").currentSystem() === sys["web2e"] ? true : undefined),
      60_000,
    );
    // A cache that lacks part of the closure is refused with the command that fills it.
    mkdirSync(file("empty-cache"), { recursive: true });
    const refused = await fleet.cli([
      "bundle",
      "create",
      "--manifest",
      file("fc.hosts.json"),
      "-o",
      file("fc2.ferry"),
      "--signing-key-file",
      fleet.key.secretFile,
      "--from-file-cache",
      file("empty-cache"),
      "--json",
    ]);
    assert.equal(refused.json<ErrorJson>().error.code, "E_BAD_ARGUMENT");
    assert.match(refused.json<ErrorJson>().error.message, /nix copy --to file:\/\//);
  });

  test("a nix-store --export stream (a file or standard input) becomes a signed bundle without the store, and deploys", async () => {
    const system = sys["web2f"] as string;
    const exported = file("closure.export");
    await mustExec(["sh", "-c", 'nix-store --export $(nix-store -qR "$1") > "$2"', "sh", system, exported], { timeoutMs: 120_000 });
    writeFileSync(file("ex.hosts.json"), JSON.stringify({ hosts: { "web-2": system } }));
    const createArgs = (output: string, source: string): string[] => [
      "bundle",
      "create",
      "--manifest",
      file("ex.hosts.json"),
      "-o",
      file(output),
      "--signing-key-file",
      fleet.key.secretFile,
      "--from-export",
      source,
      "--json",
    ];
    const made = await fleet.cli(createArgs("ex.ferry", exported));
    assert.equal(made.code, 0, made.stdout + made.stderr);
    // The same stream piped in.
    const pipe = 'root="$1"; ferry="$2"; shift 2; nix-store --export $(nix-store -qR "$root") | "$ferry" "$@"';
    await mustExec(["sh", "-c", pipe, "sh", system, FERRY_BIN, ...createArgs("ex-stdin.ferry", "-")], {
      timeoutMs: 120_000,
    });
    for (const bundle of ["ex.ferry", "ex-stdin.ferry"]) {
      const inspected = (await fleet.mustCli(["bundle", "inspect", file(bundle), "--json"])).json<{
        formatVersion: string;
        closure: { storePath: string; narHash: string }[];
      }>();
      assert.equal(inspected.formatVersion, "2.2");
      for (const path of inspected.closure) {
        // The hashes computed from the export are the ones Nix recorded.
        assert.equal(path.narHash, (await mustExec(["nix-store", "-q", "--hash", path.storePath])).trim(), path.storePath);
      }
    }
    // Damaged or partial exports: refused, and no bundle (or part of one) is left.
    const bytes = readFileSync(exported);
    writeFileSync(file("truncated.export"), bytes.subarray(0, bytes.length - 100));
    const systemOnly = file("system-only.export");
    await mustExec(["sh", "-c", 'nix-store --export "$1" > "$2"', "sh", system, systemOnly]);
    for (const [source, code] of [
      [file("truncated.export"), "E_EXPORT_MALFORMED"],
      [systemOnly, "E_EXPORT_INCOMPLETE"],
    ] as const) {
      const refused = await fleet.cli(createArgs("ex-bad.ferry", source));
      assert.equal(refused.json<ErrorJson>().error.code, code, refused.stdout + refused.stderr);
      assert.equal(existsSync(file("ex-bad.ferry")) || existsSync(file("ex-bad.ferry.partial")), false);
    }
    const imported = await fleet.cli(importArgs(file("ex.ferry"), "--deploy"));
    assert.equal(imported.code, 0, imported.stdout + imported.stderr);
    await waitFor("web-2 running the system from the export", async () => (fleet.host("web-2").currentSystem() === system ? true : undefined), 60_000);
  });

  test("a plain file cache tarball with a detached signed manifest is imported, and a damaged one leaves no trace", async () => {
    const system = sys["web2g"] as string;
    const cache = file("plain-cache");
    await mustExec(["nix", "--extra-experimental-features", "nix-command", "copy", "--to", `file://${cache}`, system], { timeoutMs: 120_000 });
    await mustExec(["tar", "-C", cache, "-cf", file("cache.tar"), "."]);
    writeFileSync(file("pc.hosts.json"), JSON.stringify({ hosts: { "web-2": system } }));
    await fleet.mustCli([
      "bundle",
      "sign-cache",
      cache,
      "--manifest",
      file("pc.hosts.json"),
      "-o",
      file("cache.manifest"),
      "--signing-key-file",
      fleet.key.secretFile,
    ]);
    const verified = await fleet.mustCli([
      "bundle",
      "verify",
      file("cache.tar"),
      "--manifest-file",
      file("cache.manifest"),
      "--trusted-key",
      fleet.key.publicKey,
      "--json",
    ]);
    assert.equal(verified.json<{ valid: boolean }>().valid, true);
    // A byte flipped inside the largest NAR (Nix's xz): the controller alone must refuse it too.
    const bytes = readFileSync(file("cache.tar"));
    const flipped = Buffer.from(bytes);
    const xz = bytes.lastIndexOf(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]));
    flipped[xz + 64] = (flipped[xz + 64] as number) ^ 0x10;
    writeFileSync(file("flipped-cache.tar"), flipped);
    const before = siteSnapshot();
    for (const extra of [[], ["--no-local-verify"]]) {
      const refused = await fleet.cli(importArgs(file("flipped-cache.tar"), "--manifest-file", file("cache.manifest"), "--deploy", ...extra));
      assert.equal(refused.json<ErrorJson>().error.code, "E_BUNDLE_TAMPERED", refused.stdout + refused.stderr);
      // Refused here first, the upload is cut off; the controller then drops what it had staged.
      await waitFor("the controller to drop the refused upload's staging", () => siteSnapshot() === before || undefined, 10_000);
    }
    const imported = await fleet.cli(importArgs(file("cache.tar"), "--manifest-file", file("cache.manifest"), "--deploy"));
    assert.equal(imported.code, 0, imported.stdout + imported.stderr);
    await waitFor("web-2 running the system from the cache tarball", async () => (fleet.host("web-2").currentSystem() === system ? true : undefined), 60_000);
  });
});
