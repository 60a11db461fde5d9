// Every bad input named by the product contract ends in a specific error code
// and changes nothing: not the controller's records, not the host's system.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Fleet, type SigningKey } from "../harness/fleet.js";
import { buildFixtureSystem } from "../harness/fixtures.js";
import { waitFor } from "../harness/exec.js";
import { hostStatus, type HostJson } from "../harness/status.js";

describe(
  "bad input is refused with a specific error and changes nothing",
  { skip: process.getuid?.() !== 0 ? "needs root for network namespaces" : false },
  () => {
    let fleet: Fleet;
    let good: string;
    let otherKey: SigningKey;

    const status = (name: string): Promise<HostJson> => hostStatus(fleet, name);

    async function errorOf(args: string[]): Promise<{ code: string; message: string; output?: string }> {
      const result = await fleet.cli([...args, "--json"]);
      assert.notEqual(result.code, 0, `ferry ${args.join(" ")} should fail`);
      return result.json<{ error: { code: string; message: string; output?: string } }>().error;
    }

    before(async () => {
      fleet = await Fleet.start("bad-input");
      await fleet.addHost("db-1");
      otherKey = await fleet.generateKey("someone-else-1");
      good = await buildFixtureSystem("db-1", 1);
      await fleet.push([good]);
      const first = await fleet.cli(["deploy", `db-1=${good}`, "--wait", "--timeout", "120"]);
      assert.equal(first.code, 0, first.stderr);
    });

    after(async () => {
      await fleet?.close();
    });

    test("a wrong or missing operator token", async () => {
      const wrong = join(fleet.dir, "wrong.token");
      writeFileSync(wrong, "not-the-token\n");
      const result = await fleet.cli(["host", "add", "intruder", "--token-out", "-", "--token-file", wrong, "--json"]);
      assert.equal(result.code, 1);
      assert.equal(result.json<{ error: { code: string } }>().error.code, "E_AUTH");
      const missing = await fleet.cli(["status", "--token-file", join(fleet.dir, "absent.token")]);
      assert.match(missing.stderr, /error E_FILE_NOT_FOUND: operator token file \S*absent\.token does not exist/);
      const hosts = (await fleet.mustCli(["host", "list", "--json"])).json<{ hosts: HostJson[] }>().hosts;
      assert.deepEqual(
        hosts.map((host) => host.name),
        ["db-1"],
      );
    });

    test("an unknown host", async () => {
      assert.equal((await errorOf(["deploy", `ghost=${good}`])).code, "E_UNKNOWN_HOST");
      assert.equal((await errorOf(["status", "ghost"])).code, "E_UNKNOWN_HOST");
      assert.equal((await errorOf(["host", "remove", "ghost"])).code, "E_UNKNOWN_HOST");
    });

    test("host names with '/', '..' or spaces", async () => {
      for (const name of ["a/b", "..", "../etc", "web 1", "web_1", "a..b"]) {
        assert.equal((await errorOf(["host", "add", name, "--token-out", "-"])).code, "E_BAD_HOST_NAME", name);
        assert.equal((await errorOf(["deploy", `${name}=${good}`])).code, "E_BAD_HOST_NAME", name);
      }
    });

    test("store paths that are not /nix/store/<32 nix-base32 chars>-<name>", async () => {
      const hash = good.slice("/nix/store/".length, "/nix/store/".length + 32);
      for (const path of [
        "/nix/store/short-x",
        `/nix/store/${hash.slice(0, 31)}e-x`,
        `/tmp/${hash}-x`,
        `/nix/store/${hash}-a/b`,
        `/nix/store/${hash}-.x`,
        `${good}/../x`,
      ]) {
        assert.equal((await errorOf(["deploy", `db-1=${path}`])).code, "E_BAD_STORE_PATH", path);
      }
      const before = await status("db-1");
      assert.equal(before.desiredSystem, good);
    });

    test("a path missing from the cache is refused and nothing is recorded", async () => {
      const unpushed = await buildFixtureSystem("db-1", 99);
      const before = await status("db-1");
      const error = await errorOf(["deploy", `db-1=${unpushed}`]);
      assert.equal(error.code, "E_PATH_NOT_IN_CACHE");
      assert.match(error.message, /nixos-system-db-1-99/);
      const afterwards = await status("db-1");
      assert.equal(afterwards.desiredSerial, before.desiredSerial);
      assert.equal(afterwards.desiredSystem, good);
    });

    test("a path signed by an untrusted key is refused by the agent, which keeps its system", async () => {
      const untrusted = await buildFixtureSystem("db-1", 2);
      await fleet.push([untrusted], otherKey);
      const result = await fleet.cli(["deploy", `db-1=${untrusted}`, "--wait", "--timeout", "60", "--json"]);
      assert.equal(result.code, 1);
      const host = await status("db-1");
      assert.equal(host.lastError?.code, "E_UNSIGNED_PATH");
      assert.equal(host.phase, "failed");
      assert.equal(host.currentSystem, good);
      assert.equal(fleet.host("db-1").currentSystem(), good);
      assert.equal(fleet.host("db-1").profileSystem(), good);
      assert.equal((await fleet.host("db-1").run(["nix-store", "--check-validity", untrusted])).code === 0, false, "nothing unsigned entered the host's store");
      assert.ok(fleet.host("db-1").agentRunning, "the agent keeps running");
    });

    test("an unsigned path is refused the same way", async () => {
      const unsigned = await buildFixtureSystem("db-1", 3);
      await fleet.push([unsigned], null);
      // The controller refuses it first (E_CACHE_UNSIGNED); past that, the host refuses it on its own.
      assert.equal((await errorOf(["deploy", `db-1=${unsigned}`])).code, "E_CACHE_UNSIGNED");
      const result = await fleet.cli(["deploy", `db-1=${unsigned}`, "--allow-unsigned", "--wait", "--timeout", "60"]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /E_DEPLOY_FAILED: .*E_UNSIGNED_PATH/);
      assert.equal(fleet.host("db-1").currentSystem(), good);
    });

    test("switch-to-configuration exiting non-zero is reported with its output and the previous system restored", async () => {
      const broken = await buildFixtureSystem("db-1", 4, "fail-activation");
      await fleet.push([broken]);
      const result = await fleet.cli(["deploy", `db-1=${broken}`, "--wait", "--timeout", "60"]);
      assert.equal(result.code, 1);
      const host = await status("db-1");
      assert.equal(host.lastError?.code, "E_ACTIVATION_FAILED");
      assert.match(host.lastError?.output ?? "", /fixture-app.service failed/);
      assert.equal(host.phase, "rolled-back");
      assert.equal(fleet.host("db-1").currentSystem(), good);
      assert.equal(fleet.host("db-1").profileSystem(), good);
      assert.deepEqual(fleet.host("db-1").switchCalls().slice(-2), [
        ["test", broken],
        ["switch", good],
      ]);
    });

    test("an agent with a wrong token is refused with E_AUTH and the host stays offline", async () => {
      const rogue = await fleet.addHost("rogue-1", { start: false });
      writeFileSync(join(rogue.dir, "token"), "wrong-token\n");
      rogue.startAgent();
      await rogue.waitForLog("E_AUTH refusal", (event) => event["code"] === "E_AUTH" && event["msg"] === "controller refused: unknown host or wrong token");
      assert.equal((await status("rogue-1")).online, false);
      await rogue.stopAgent();
    });

    test("an agent naming a host the controller does not know gets the same E_AUTH refusal as a wrong token", async () => {
      const stray = fleet.host("rogue-1");
      const config = join(stray.dir, "agent.json");
      stray.writeAgentConfig({
        controllerPort: fleet.controller.httpPort,
        token: "whatever",
        trustedPublicKeys: [fleet.key.publicKey],
        extra: { hostName: "not-registered" },
      });
      stray.startAgent();
      await stray.waitForLog("E_AUTH refusal", (event) => event["code"] === "E_AUTH" && event["msg"] === "controller refused: unknown host or wrong token");
      await stray.stopAgent();
      assert.ok(config);
      const hosts = (await fleet.mustCli(["host", "list", "--json"])).json<{ hosts: HostJson[] }>().hosts;
      assert.deepEqual(hosts.map((host) => host.name).sort(), ["db-1", "rogue-1"]);
    });

    test("the running host still deploys normally afterwards", async () => {
      const next = await buildFixtureSystem("db-1", 5);
      await fleet.push([next]);
      const result = await fleet.cli(["deploy", `db-1=${next}`, "--wait", "--timeout", "60"]);
      assert.equal(result.code, 0, result.stderr);
      await waitFor("db-1 on generation 5", () => fleet.host("db-1").currentSystem() === next || undefined);
    });

    test("host names ignore case: Web-2 is web-2 for host add, the agent's hello, deploy and status", async () => {
      // Registered as Web-2 and configured as Web-2 on the host, as a DNS user would type it.
      const host = await fleet.addHost("Web-2");
      const added = await status("WEB-2");
      assert.equal(added.name, "web-2");
      const again = await errorOf(["host", "add", "web-2", "--token-out", "-"]);
      assert.equal(again.code, "E_HOST_EXISTS");
      assert.match(again.message, /host web-2 already exists/);
      const system = await buildFixtureSystem("web-2", 1);
      await fleet.push([system]);
      const deployed = await fleet.cli(["deploy", `web-2=${system}`, "--wait", "--timeout", "120", "--json"]);
      assert.equal(deployed.code, 0, deployed.stderr);
      assert.deepEqual(
        deployed.json<{ hosts: HostJson[] }>().hosts.map((entry) => entry.name),
        ["web-2"],
      );
      assert.equal(host.currentSystem(), system);
      const shown = await status("WEB-2");
      assert.equal(shown.currentSystem, system);
      assert.equal(shown.online, true);
      const listed = (await fleet.mustCli(["host", "list", "--json"])).json<{ hosts: HostJson[] }>().hosts;
      assert.deepEqual(
        listed.map((entry) => entry.name).filter((name) => /web/i.test(name)),
        ["web-2"],
      );
      assert.match((await fleet.mustCli(["status", "wEb-2"])).stdout, /^web-2 +online/m);
    });
  },
);
