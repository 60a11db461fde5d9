// ferry cache gc end to end: two systems pushed, one deployed; a collection
// with --min-age 0 deletes the other, and the deployed one still realises
// from the cache into an empty store. The default minimum age keeps fresh
// pushes; a dry run changes nothing; bad flags change nothing; two
// collections at once both succeed.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { CollectCacheGarbageResponse } from "@ferry/protocol";
import { Fleet } from "../harness/fleet.js";
import { buildFixtureSystem } from "../harness/fixtures.js";

describe("ferry cache gc", { skip: process.getuid?.() !== 0 ? "needs root for network namespaces" : false }, () => {
  let fleet: Fleet;
  let deployed: string;
  let other: string;

  const narinfoFile = (path: string): string =>
    join(fleet.controller.dataDir, "cache", `${path.slice("/nix/store/".length, "/nix/store/".length + 32)}.narinfo`);
  const gc = async (args: string[]): Promise<CollectCacheGarbageResponse> =>
    (await fleet.mustCli(["cache", "gc", ...args, "--json"])).json<CollectCacheGarbageResponse>();

  before(async () => {
    fleet = await Fleet.start("cache-gc");
    await fleet.addHost("web-1");
    deployed = await buildFixtureSystem("web-1", 1);
    other = await buildFixtureSystem("web-1", 2);
    await fleet.push([deployed, other]);
    await fleet.mustCli(["deploy", `web-1=${deployed}`, "--wait", "--timeout", "120"]);
  });

  after(async () => {
    await fleet?.close();
  });

  test("the default minimum age (7 days) keeps a fresh push nobody needs", async () => {
    const report = await gc([]);
    assert.equal(report.deletedCount, 0);
    assert.ok(report.keptYoung >= 1, JSON.stringify(report));
    assert.equal(report.minAgeSeconds, 7 * 86_400);
    assert.ok(existsSync(narinfoFile(other)));
  });

  test("bad flags are refused before anything is asked of the controller", async () => {
    for (const args of [
      ["--min-age", "soon"],
      ["--keep-bundles", "-1"],
      ["--min-age", "1d", "--min-age", "2d", "--bogus"],
    ]) {
      const result = await fleet.cli(["cache", "gc", ...args, "--json"]);
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stdout}`);
      assert.equal(result.json<{ error: { code: string } }>().error.code, "E_BAD_ARGUMENT");
    }
    assert.ok(existsSync(narinfoFile(other)));
  });

  test("--dry-run --min-age 0 names what would go and deletes nothing", async () => {
    const report = await gc(["--dry-run", "--min-age", "0"]);
    assert.equal(report.dryRun, true);
    assert.ok(report.deleted.includes(other), JSON.stringify(report.deleted));
    assert.ok(!report.deleted.includes(deployed));
    assert.ok(existsSync(narinfoFile(other)));
  });

  test("--min-age 0 deletes the system no host needs, keeps the deployed one, and says so", async () => {
    const result = await fleet.mustCli(["cache", "gc", "--min-age", "0"]);
    assert.match(result.stdout, /^deleted [1-9]\d* path\(s\), \d+\.\d MiB, in \d+\.\d\d s$/m);
    assert.match(result.stdout, /^kept \d+ path\(s\): \d+ by desired systems/m);
    assert.match(result.stdout, new RegExp(`deleted ${other.replace(/[.+]/g, "\\$&")}`));
    assert.ok(!existsSync(narinfoFile(other)));
    assert.ok(existsSync(narinfoFile(deployed)));
    const audit = await fleet.mustCli(["audit", "--json"]);
    assert.match(audit.stdout, /cache\.gc/);
  });

  test("the deployed system still realises from the cache into an empty store; the deleted one does not", async () => {
    const fresh = await fleet.addHost("fresh", { start: false });
    const realise = (path: string) =>
      fresh.run([
        "nix-store",
        "--realise",
        path,
        "--option",
        "substituters",
        `http://${fresh.gateway}:${fleet.controller.httpPort}/cache`,
        "--option",
        "trusted-public-keys",
        fleet.key.publicKey,
        "--option",
        "require-sigs",
        "true",
        "--option",
        "narinfo-cache-negative-ttl",
        "0",
      ]);
    const good = await realise(deployed);
    assert.equal(good.code, 0, good.stderr);
    const gone = await realise(other);
    assert.notEqual(gone.code, 0, "the collected system cannot be substituted");
  });

  test("two collections at once both succeed; the second finds nothing left", async () => {
    await fleet.push([other]);
    const [one, two] = await Promise.all([gc(["--min-age", "0"]), gc(["--min-age", "0"])]);
    const counts = [one.deletedCount, two.deletedCount];
    assert.ok(counts.includes(0) && Math.max(...counts) > 0, `one deletes, the other runs after it: ${counts.join(", ")}`);
    assert.ok(!existsSync(narinfoFile(other)));
  });
});
