// A system that carries another agent build (its ferry-agent.service names
// another package): once the system is confirmed the agent restarts itself
// into that build and reports its version; a kill at any point in between
// leaves the host consistent; and a rollback brings the old agent back.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { Fleet } from "../harness/fleet.js";
import { buildFixtureSystem, type FixtureBehaviour } from "../harness/fixtures.js";
import { waitFor } from "../harness/exec.js";
import type { SimHost } from "../harness/sim-host.js";
import { allOnline, hostStatus, settled, type HostJson } from "../harness/status.js";

const HEALTH_CHECK = { type: "command", argv: ["/bin/sh", "-c", 'test "$(cat /run/fixture-health 2>/dev/null || echo ok)" = ok'], timeout: 5 };
const AGENT_CONFIG = { confirmTimeout: 12, activationTimeout: 20, selfRestart: true, healthChecks: [HEALTH_CHECK] };
const RESTARTING = "the running system starts another agent build; exiting so the service manager restarts into it";
const RESTARTED = "restarted into the agent build the running system names";

describe(
  "the agent restarts into the agent build a confirmed system names",
  { skip: process.getuid?.() !== 0 ? "needs root for network namespaces" : false },
  () => {
    let fleet: Fleet;
    let host: SimHost;
    let baseVersion = "";
    let generation = 1;

    /** The agent package a fixture system's unit starts, read from the machine's store. */
    function agentBuildOf(system: string): string {
      const unit = readFileSync(join(system, "etc/systemd/system/ferry-agent.service"), "utf8");
      return (/^ExecStart=(\S+)\/bin\/ferry-agent /m.exec(unit) ?? [])[1] ?? "";
    }
    const versionOf = (system: string): string => `${baseVersion}+${basename(agentBuildOf(system)).slice(0, 12)}`;
    const count = (msg: string): number =>
      host
        .agentLogText()
        .split("\n")
        .filter((line) => line.includes(`"msg":"${msg}"`)).length;

    async function build(agentTag: string, behaviour: FixtureBehaviour = "ok"): Promise<string> {
      const system = await buildFixtureSystem(host.name, ++generation, behaviour, { tag: agentTag, config: join(host.dir, "agent.json") });
      await fleet.push([system]);
      return system;
    }

    /** Restarts the agent (from the running system's unit) to stop dead at `point`, deploys `system` and waits for the pause. */
    async function deployPausedAt(system: string, point: string): Promise<void> {
      await host.stopAgent();
      host.startAgent({ FERRY_AGENT_FAULT: `pause-after:${point}` });
      assert.equal((await fleet.cli(["deploy", `${host.name}=${system}`])).code, 0);
      // Generous: the fetch and switch before this point ran past 60 s once in a full suite on 2 loaded cores (passes alone in ~15 s).
      await host.waitForLog(`pause at ${point}`, (event) => event["msg"] === "fault injection: pausing after this phase" && event["phase"] === point, 150_000);
    }

    async function reportsVersion(version: string): Promise<HostJson> {
      return waitFor(`${host.name} reports agent ${version}`, async () => {
        const status = await hostStatus(fleet, host.name);
        return status.online && status.agentVersion === version ? status : undefined;
      });
    }

    function assertConsistent(system: string): void {
      assert.equal(host.currentSystem(), system, "running system");
      assert.equal(host.profileSystem(), system, "boot default");
      const state = host.agentState();
      assert.equal(state.transaction, null, "no open transaction");
    }

    before(async () => {
      fleet = await Fleet.start("upgrade");
      host = await fleet.addHost("u-1", { agentConfig: AGENT_CONFIG });
      const first = await buildFixtureSystem("u-1", 1);
      await fleet.push([first]);
      await allOnline(fleet);
      const result = await fleet.cli(["deploy", `u-1=${first}`, "--wait", "--timeout", "120"]);
      assert.equal(result.code, 0, result.stderr);
      baseVersion = (await hostStatus(fleet, "u-1")).agentVersion;
      assert.match(baseVersion, /^\d+\.\d+\.\d+$/, "the checkout's agent runs from outside the store");
    });

    after(async () => {
      await fleet?.close();
    });

    test("after confirmation the host reports the new agent version; the same build again restarts nothing", async () => {
      const system = await build("b");
      const result = await fleet.cli(["deploy", `u-1=${system}`, "--wait", "--timeout", "120"]);
      assert.equal(result.code, 0, result.stderr);
      const status = await reportsVersion(versionOf(system));
      assert.equal(status.phase, "active");
      assertConsistent(system);
      assert.equal(count(RESTARTING), 1);
      assert.equal(count(RESTARTED), 1);
      assert.equal(host.agentState().agentRestart, null);
      const table = await fleet.cli(["status", "u-1"]);
      assert.match(table.stdout, /AGENT/);
      assert.ok(table.stdout.includes(versionOf(system)), table.stdout);

      const same = await build("b");
      assert.equal(agentBuildOf(same), agentBuildOf(system));
      const again = await fleet.cli(["deploy", `u-1=${same}`, "--wait", "--timeout", "120"]);
      assert.equal(again.code, 0, again.stderr);
      assertConsistent(same);
      assert.equal(count(RESTARTING), 1, "no restart for the same build");
    });

    test("kill -9 after the confirmation was persisted: the new build finishes the transaction itself", async () => {
      const system = await build("c");
      await deployPausedAt(system, "confirmed");
      await host.stopAgent("SIGKILL");
      assert.equal(host.agentState().transaction?.phase, "confirmed");
      host.startAgent();
      const status = await settled(fleet, "u-1");
      assert.equal(status.phase, "active");
      await reportsVersion(versionOf(system));
      assertConsistent(system);
    });

    test("kill -9 between recording the restart and exiting: the next start is the new build, and says so", async () => {
      const restartsBefore = count(RESTARTED);
      const system = await build("d");
      await deployPausedAt(system, "self-restart");
      await host.stopAgent("SIGKILL");
      assert.equal(host.agentState().transaction, null, "the transaction was closed before the restart");
      assert.match(host.agentState().agentRestart?.to ?? "", new RegExp(agentBuildOf(system)));
      host.startAgent();
      const status = await reportsVersion(versionOf(system));
      assert.equal(status.phase, "active");
      assertConsistent(system);
      await waitFor("restart confirmed in the log", () => (count(RESTARTED) === restartsBefore + 1 ? true : undefined));
      assert.equal(host.agentState().agentRestart, null);
    });

    test("an unhealthy system with a new agent, killed mid-confirmation: the old system and the old agent come back", async () => {
      const previous = host.currentSystem();
      const system = await build("e", "fail-health");
      await deployPausedAt(system, "confirming");
      await host.stopAgent("SIGKILL");
      // systemd restarts the unit as the trial's switch reloaded it: the new build resumes the confirmation.
      host.startAgent();
      const status = await settled(fleet, "u-1", 90_000);
      assert.equal(status.phase, "rolled-back");
      // Checks are retried until the deadline; which of the two ends it depends on how long the restart took.
      assert.ok(["E_HEALTH_CHECK_FAILED", "E_CONFIRM_TIMEOUT"].includes(status.lastError?.code ?? ""), status.lastError?.code);
      await reportsVersion(versionOf(previous));
      assertConsistent(previous);
    });
  },
);
