// Two simulated hosts, each with its own network namespace and /nix, deployed
// twice through the real CLI, controller and agents over real Nix.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Fleet } from "../harness/fleet.js";
import { buildFixtureSystem } from "../harness/fixtures.js";
import { waitFor } from "../harness/exec.js";
import { allOnline, hostStatus, type HostJson } from "../harness/status.js";

describe("deploying a fleet of two hosts", { skip: process.getuid?.() !== 0 ? "needs root for network namespaces" : false }, () => {
  let fleet: Fleet;
  const systems: Record<string, string[]> = {};

  before(async () => {
    fleet = await Fleet.start("deploy");
    await fleet.addHost("web-1", { tags: ["web", "staging"] });
    await fleet.addHost("web-2", { tags: ["web"] });
    for (const name of ["web-1", "web-2"]) systems[name] = [await buildFixtureSystem(name, 1), await buildFixtureSystem(name, 2)];
    await fleet.push(Object.values(systems).flat());
    await allOnline(fleet);
  });

  after(async () => {
    await fleet?.close();
  });

  for (const generation of [1, 2]) {
    test(`generation ${generation} reaches both hosts and deploy --wait exits 0`, async () => {
      const targets = ["web-1", "web-2"].map((name) => `${name}=${systems[name]?.[generation - 1]}`);
      const result = await fleet.cli(["deploy", ...targets, "--wait", "--timeout", "120", "--json"]);
      assert.equal(result.code, 0, result.stdout + result.stderr);
      assert.equal(result.json<{ success: boolean }>().success, true);
      for (const name of ["web-1", "web-2"]) {
        const host = fleet.host(name);
        const expected = systems[name]?.[generation - 1];
        assert.equal(host.currentSystem(), expected, `${name} /run/current-system`);
        assert.equal(host.profileSystem(), expected, `${name} system profile`);
        // The default trial strategy: activate with `test`, confirm, then install as the boot default.
        assert.deepEqual(host.switchCalls().slice(-2), [
          ["test", expected],
          ["boot", expected],
        ]);
        assert.equal(host.switchCalls().length, 2 * generation);
      }
      const forwarded = fleet.controller
        .logText()
        .split("\n")
        .filter((line) => line.includes('"agentLevel"') && line.includes('"msg":"new system active and confirmed"'));
      assert.ok(forwarded.length >= 2 * generation, "the agents' own log lines about the deployment reach the controller's log");
      const status = (await fleet.mustCli(["status", "--json"])).json<{ hosts: HostJson[] }>();
      for (const host of status.hosts) {
        assert.equal(host.phase, "active");
        assert.equal(host.currentSystem, systems[host.name]?.[generation - 1]);
        assert.equal(host.appliedSerial, generation);
        assert.equal(host.lastError, null);
      }
    });
  }

  test("the fetched closure is in each host's own store and nowhere else was switched", async () => {
    const host = fleet.host("web-1");
    const result = await host.run(["nix-store", "--query", "--requisites", systems["web-1"]?.[1] as string]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /fixture-hello-web-1-2/);
    const other = await host.run(["nix-store", "--check-validity", systems["web-2"]?.[1] as string]);
    assert.notEqual(other.code, 0, "web-1 must not hold web-2's system");
  });

  test("a deployment recorded while an agent is away is picked up when it reconnects", async () => {
    const host = fleet.host("web-2");
    await host.stopAgent();
    await waitFor("web-2 offline", async () => !(await hostStatus(fleet, "web-2")).online || undefined);
    const back = systems["web-2"]?.[0] as string;
    const recorded = await fleet.cli(["deploy", `web-2=${back}`]);
    assert.equal(recorded.code, 0, recorded.stderr);
    host.startAgent();
    const waited = await fleet.cli(["deploy", `web-2=${back}`, "--wait", "--timeout", "60"]);
    assert.equal(waited.code, 0, waited.stderr);
    assert.equal(host.currentSystem(), back);
  });

  test("deploy --wait survives a controller restart, and a graceful stop does not hang on open watches", async () => {
    const host = fleet.host("web-1");
    await host.stopAgent();
    const target = systems["web-1"]?.[0] as string;
    assert.notEqual(host.currentSystem(), target, "a real switch is awaited");
    const waiting = fleet.cli(["deploy", `web-1=${target}`, "--wait", "--timeout", "120"]);
    await waitFor("the deployment recorded", async () => (await hostStatus(fleet, "web-1")).phase === "pending" || undefined);
    const stopping = Date.now();
    await fleet.controller.stop("SIGTERM");
    assert.ok(Date.now() - stopping < 8000, "SIGTERM stops the controller promptly");
    await fleet.controller.start();
    host.startAgent();
    const result = await waiting;
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /controller unreachable; still waiting/);
    assert.equal(host.currentSystem(), target);
  });

  test("agents reconnect after a controller restart and keep running their system", async () => {
    const before = fleet.host("web-1").currentSystem();
    await fleet.controller.stop("SIGKILL");
    await fleet.controller.start();
    await allOnline(fleet, 30_000);
    assert.equal(fleet.host("web-1").currentSystem(), before);
    assert.equal((await hostStatus(fleet, "web-1")).phase, "active");
  });

  test("dry-activate shows what a switch would do, and changes nothing", async () => {
    const host = fleet.host("web-1");
    const calls = host.switchCalls().length;
    const running = host.currentSystem();
    const target = systems["web-1"]?.[0] as string;
    const result = await fleet.cli(["dry-activate", `web-1=${target}`, "--json"]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.json<{ output: string }>().output, new RegExp(`would activate ${target}`));
    assert.deepEqual(host.switchCalls().slice(calls), [["dry-activate", target]]);
    assert.equal(host.currentSystem(), running);
    await fleet.host("web-2").stopAgent();
    const offline = await fleet.cli(["dry-activate", `web-2=${systems["web-2"]?.[0]}`, "--json"]);
    assert.equal(offline.json<{ error: { code: string } }>().error.code, "E_HOST_OFFLINE");
    fleet.host("web-2").startAgent();
    await waitFor("web-2 back", async () => (await hostStatus(fleet, "web-2")).online || undefined);
  });

  test("host list and status print tables for people", async () => {
    const list = await fleet.mustCli(["host", "list"]);
    assert.match(list.stdout, /^HOST\s+TAGS\s+ONLINE/m);
    assert.match(list.stdout, /web-1\s+staging,web\s+yes/);
    const status = await fleet.mustCli(["status"]);
    assert.match(status.stdout, /web-2\s+online\s+active/);
  });
});
