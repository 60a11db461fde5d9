// Signatures end to end: a host runs only what its own keys signed, even a
// path already in its store; the cache push signs, repairs an unsigned push,
// refuses conflicting contents; deploys refuse closures the cache holds no
// signature for; cache rm keeps what hosts need.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Fleet } from "../harness/fleet.js";
import { ferry } from "../harness/ferry-cli.js";
import { buildFixtureSystem, fixtureBuildArgv } from "../harness/fixtures.js";
import { hostStatus } from "../harness/status.js";

describe("signatures, from cache push to the host's own check", { skip: process.getuid?.() !== 0 ? "needs root for network namespaces" : false }, () => {
  let fleet: Fleet;
  let good: string;

  const narinfoFile = (path: string): string =>
    join(fleet.controller.dataDir, "cache", `${path.slice("/nix/store/".length, "/nix/store/".length + 32)}.narinfo`);
  const sigsInCache = (path: string): string[] =>
    readFileSync(narinfoFile(path), "utf8")
      .split("\n")
      .filter((line) => line.startsWith("Sig: "))
      .map((line) => line.slice(5, line.indexOf(":", 5)));
  const referencesOf = (path: string): string[] =>
    (/^References: (.*)$/m.exec(readFileSync(narinfoFile(path), "utf8"))?.[1] ?? "")
      .split(" ")
      .filter(Boolean)
      .map((base) => `/nix/store/${base}`);

  async function errorOf(args: string[], env: Record<string, string> = {}): Promise<{ code: string; message: string }> {
    const result = await ferry([...args, "--json"], { ...fleet.env, ...env });
    assert.notEqual(result.code, 0, `ferry ${args.join(" ")} should fail`);
    return result.json<{ error: { code: string; message: string } }>().error;
  }

  before(async () => {
    fleet = await Fleet.start("signatures");
    await fleet.addHost("web-1");
    good = await buildFixtureSystem("web-1", 1);
    await fleet.push([good]);
    const first = await fleet.cli(["deploy", `web-1=${good}`, "--wait", "--timeout", "120"]);
    assert.equal(first.code, 0, first.stderr);
  });

  after(async () => {
    await fleet?.close();
  });

  test("a system built in the host's own store and pushed unsigned is refused by the agent (E_UNSIGNED_PATH); the host keeps its system", async () => {
    const host = fleet.host("web-1");
    const local = await buildFixtureSystem("web-1", 2);
    // The same derivation built inside the host: valid there, unsigned, "ultimate". nix-store --realise never checks it.
    const built = await host.run(fixtureBuildArgv("web-1", 2));
    assert.equal(built.code, 0, built.stderr);
    assert.equal(built.stdout.trim(), local);
    await fleet.push([local], null);

    const dry = await errorOf(["dry-activate", `web-1=${local}`, "--timeout", "60"]);
    assert.equal(dry.code, "E_UNSIGNED_PATH", dry.message);

    const result = await fleet.cli(["deploy", `web-1=${local}`, "--allow-unsigned", "--wait", "--timeout", "60"]);
    assert.equal(result.code, 1, result.stdout);
    const status = await hostStatus(fleet, "web-1");
    assert.equal(status.lastError?.code, "E_UNSIGNED_PATH");
    assert.match(status.lastError?.message ?? "", /\/nix\/store\/[0-9a-z]{32}-.* carries no signature \(it was built or added on this machine/);
    assert.equal(status.phase, "failed");
    assert.equal(host.currentSystem(), good);
    assert.equal(host.profileSystem(), good);
    assert.ok(!host.switchCalls().some(([, system]) => system === local), "the unsigned system's switch script never ran");

    // Signing it in the cache repairs it: the agent takes the cache's signatures for its own copy, checks them, and switches.
    await fleet.push([local]);
    const again = await fleet.cli(["deploy", `web-1=${local}`, "--wait", "--timeout", "120"]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(host.currentSystem(), local);
  });

  test("cache push without a key is refused (E_PUSH_UNSIGNED) and uploads nothing; FERRY_SIGNING_KEY_FILE signs", async () => {
    const system = await buildFixtureSystem("web-1", 3);
    const refused = await errorOf(["cache", "push", system]);
    assert.equal(refused.code, "E_PUSH_UNSIGNED");
    assert.equal(existsSync(narinfoFile(system)), false);

    const both = await errorOf(["cache", "push", system, "--unsigned", "--signing-key-file", fleet.key.secretFile]);
    assert.equal(both.code, "E_BAD_ARGUMENT");

    const pushed = await ferry(["cache", "push", system, "--json"], { ...fleet.env, FERRY_SIGNING_KEY_FILE: fleet.key.secretFile });
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.equal(pushed.json<{ signed: boolean }>().signed, true);
    assert.deepEqual(sigsInCache(system), [fleet.key.name]);
  });

  test("an unsigned push: deploy and rollout start refuse it (E_CACHE_UNSIGNED); pushing again with the key adds the signatures", async () => {
    const system = await buildFixtureSystem("web-1", 4);
    const pushed = await fleet.cli(["cache", "push", system, "--unsigned", "--json"]);
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.equal(pushed.json<{ signed: boolean }>().signed, false);
    assert.deepEqual(sigsInCache(system), []);
    const before = await hostStatus(fleet, "web-1");

    const deploy = await errorOf(["deploy", `web-1=${system}`]);
    assert.equal(deploy.code, "E_CACHE_UNSIGNED");
    assert.match(deploy.message, new RegExp(`no signature for 2 path\\(s\\) of the closure of ${system}`));
    const rollout = await errorOf(["rollout", "start", `web-1=${system}`]);
    assert.equal(rollout.code, "E_CACHE_UNSIGNED");
    assert.equal((await hostStatus(fleet, "web-1")).desiredSerial, before.desiredSerial);

    // Before the fix: "pushed 2 paths", and the narinfos still had no Sig:.
    const again = await fleet.cli(["cache", "push", system, "--signing-key-file", fleet.key.secretFile, "--json"]);
    assert.equal(again.code, 0, again.stderr);
    const summary = again.json<{ paths: number; uploaded: number; signaturesAdded: number }>();
    assert.deepEqual([summary.paths, summary.uploaded, summary.signaturesAdded], [2, 0, 2]);
    assert.deepEqual(sigsInCache(system), [fleet.key.name]);
    for (const reference of referencesOf(system).filter((path) => path !== system)) assert.deepEqual(sigsInCache(reference), [fleet.key.name]);

    const deployed = await fleet.cli(["deploy", `web-1=${system}`, "--wait", "--timeout", "120"]);
    assert.equal(deployed.code, 0, deployed.stderr);
    assert.equal(fleet.host("web-1").currentSystem(), system);
  });

  test("a path the cache holds with another NAR hash is refused (E_CACHE_CONFLICT) before anything is uploaded", async () => {
    const system = await buildFixtureSystem("web-1", 5);
    await fleet.push([system]);
    const file = narinfoFile(system);
    const original = readFileSync(file, "utf8");
    // As if another machine had pushed a non-reproducible build of the same derivation.
    writeFileSync(file, original.replace(/^NarHash: sha256:[0-9a-z]{52}$/m, `NarHash: sha256:${"1".repeat(52)}`));
    try {
      const next = await buildFixtureSystem("web-1", 6);
      const refused = await errorOf(["cache", "push", next, system, "--signing-key-file", fleet.key.secretFile]);
      assert.equal(refused.code, "E_CACHE_CONFLICT");
      assert.match(refused.message, new RegExp(`${system}: the cache has NAR hash .*nothing was uploaded`));
      assert.equal(existsSync(narinfoFile(next)), false);
    } finally {
      writeFileSync(file, original);
    }
  });

  test("cache rm refuses paths a host's current or previous system needs (E_CACHE_PATH_IN_USE) and removes the others", async () => {
    // web-1 runs generation 4 and ran generation 2 before it (the failed deploy of generation 2 changed nothing it ran).
    const current = (await hostStatus(fleet, "web-1")).currentSystem;
    const generation2 = await buildFixtureSystem("web-1", 2);

    const needed = await errorOf(["cache", "rm", current]);
    assert.equal(needed.code, "E_CACHE_PATH_IN_USE");
    assert.match(needed.message, /web-1's (desired|current) system/);
    const dependency = referencesOf(generation2).find((path) => path !== generation2) as string;
    const inClosure = await errorOf(["cache", "rm", dependency]);
    assert.equal(inClosure.code, "E_CACHE_PATH_IN_USE");
    assert.match(inClosure.message, new RegExp(`needed by web-1's previous system, ${generation2} \\(it is in its closure\\)`));
    assert.ok(existsSync(narinfoFile(dependency)));

    // Generation 5 was pushed, never deployed: nobody needs it.
    const unused = await buildFixtureSystem("web-1", 5);
    const removed = await fleet.cli(["cache", "rm", unused, "--json"]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.deepEqual(removed.json<{ removed: string[] }>().removed, [unused]);
    assert.equal(existsSync(narinfoFile(unused)), false);
    const deploy = await errorOf(["deploy", `web-1=${unused}`]);
    assert.equal(deploy.code, "E_PATH_NOT_IN_CACHE");
  });
});
