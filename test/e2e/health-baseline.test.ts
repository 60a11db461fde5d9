// Health checks that prove nothing, on simulated hosts over real Nix: a check
// that fails before and after the switch is reported on every deployment
// (ferry status, --json, the controller's log), a rollout's canary confirmed
// with nothing but such checks pauses the rollout, and an agent whose check
// cannot run refuses to start.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Fleet } from "../harness/fleet.js";
import { buildFixtureSystem } from "../harness/fixtures.js";
import { waitFor } from "../harness/exec.js";
import { allOnline, hostStatus, type HostJson } from "../harness/status.js";

// A service that is down on every system: the check fails before the switch and after it.
const DOWN = { type: "command", argv: ["/bin/sh", "-c", "test -e /run/ferry-service-that-never-runs"], timeout: 5 };
const DOWN_NAME = "command:/bin/sh -c test -e /run/ferry-service-that-never-runs";
const HOSTS = ["hb-1", "hb-2"];

interface StatusJson extends HostJson {
  healthChecks: { run: number; failingBeforeAndAfter: string[] };
}

interface RolloutJson {
  id: string;
  state: string;
  reason: string;
  policy: { acceptFailingChecks: boolean };
  hosts: { name: string; state: string; errorCode: string; errorMessage: string }[];
}

describe("checks failing before and after the switch", { skip: process.getuid?.() !== 0 ? "needs root for network namespaces" : false }, () => {
  let fleet: Fleet;
  let generation = 0;

  async function release(): Promise<Record<string, string>> {
    generation += 1;
    const paths: Record<string, string> = {};
    for (const host of HOSTS) paths[host] = await buildFixtureSystem(host, generation);
    await fleet.push(Object.values(paths));
    return paths;
  }

  before(async () => {
    fleet = await Fleet.start("health");
    for (const host of HOSTS) await fleet.addHost(host, { agentConfig: { confirmTimeout: 8, healthChecks: [DOWN] } });
    await allOnline(fleet);
  });

  after(async () => {
    await fleet?.close();
  });

  test("a deployment is confirmed (the baseline rule) and every one reports the check, in status --json, the table and the controller's log", async () => {
    for (const round of [1, 2]) {
      const paths = await release();
      const result = await fleet.cli(["deploy", `hb-1=${paths["hb-1"]}`, "--wait", "--timeout", "120"]);
      assert.equal(result.code, 0, result.stdout + result.stderr);
      assert.match(result.stdout, new RegExp(`warning: hb-1: checks failing before and after the switch \\(not counted\\): ${escape(DOWN_NAME)}`));
      assert.equal(fleet.host("hb-1").currentSystem(), paths["hb-1"], `round ${round}: the new system runs`);

      const status = (await fleet.mustCli(["status", "hb-1", "--json"])).json<{ hosts: StatusJson[] }>().hosts[0];
      assert.equal(status?.phase, "active");
      assert.deepEqual(status?.healthChecks, { run: 1, failingBeforeAndAfter: [DOWN_NAME] }, `round ${round}`);
    }
    const table = (await fleet.mustCli(["status", "hb-1"])).stdout;
    assert.match(table, /CHECKS/);
    assert.match(table, /1\/1 failing before\+after/);
    assert.match(table, new RegExp(`hb-1: checks failing before and after the switch \\(not counted\\): ${escape(DOWN_NAME)}`));

    const controllerLog = fleet.controller.logText().split("\n").filter(Boolean);
    const warned = controllerLog.filter((line) => line.includes('"checksFailingBeforeAndAfter"') && line.includes('"host":"hb-1"'));
    assert.ok(warned.length >= 2, "the controller logs each such result with the check names");
    const forwarded = controllerLog.find((line) => line.includes('"agentLevel"') && line.includes('"failingBefore"'));
    assert.ok(forwarded, "the agent's forwarded log line keeps its failingBefore field");
  });

  test("a rollout's canary confirmed with every check failing pauses the rollout until accepted", async () => {
    const paths = await release();
    const started = await fleet.mustCli(["rollout", "start", ...HOSTS.map((host) => `${host}=${paths[host]}`), "--canary", "1", "--json"]);
    const id = started.json<{ rollout: RolloutJson }>().rollout.id;
    const rollout = async (): Promise<RolloutJson> => (await fleet.mustCli(["rollout", "status", id, "--json"])).json<{ rollout: RolloutJson }>().rollout;

    const paused = await waitFor("the rollout to pause", async () => ((await rollout()).state === "paused" ? rollout() : undefined), 120_000, 500);
    assert.match(paused.reason, /the canary proves nothing about this release \(hb-1: none of its 1 health check\(s\) passed/);
    assert.deepEqual(
      paused.hosts.map((host) => [host.name, host.state, host.errorCode]),
      [
        ["hb-1", "confirmed", "E_CHECKS_UNPROVEN"],
        ["hb-2", "prefetched", ""],
      ],
    );
    assert.notEqual(fleet.host("hb-2").currentSystem(), paths["hb-2"], "the next wave did not start");

    const refused = await fleet.cli(["rollout", "resume", id]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /E_CHECKS_UNPROVEN/);

    await fleet.mustCli(["rollout", "resume", id, "--accept-failing-checks"]);
    const done = await waitFor("the rollout to complete", async () => ((await rollout()).state === "completed" ? rollout() : undefined), 120_000, 500);
    assert.equal(done.policy.acceptFailingChecks, true);
    assert.equal(fleet.host("hb-2").currentSystem(), paths["hb-2"]);
    assert.equal((await hostStatus(fleet, "hb-2")).phase, "active");
  });

  test("an agent whose check cannot run (a program without a path) refuses to start, naming the check", async () => {
    const host = await fleet.addHost("hb-bad", { agentConfig: { healthChecks: [{ type: "command", argv: ["sh", "-c", "true"] }] } });
    await waitFor("the agent to exit", () => (host.agentRunning ? undefined : true), 30_000, 200);
    assert.match(
      host.agentLogText(),
      /E_BAD_CONFIG: invalid agent configuration: healthChecks\[0\] \(command:sh -c true\): argv\[0\] "sh" is not an absolute path/,
    );
    assert.equal((await hostStatus(fleet, "hb-bad")).online, false);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}
