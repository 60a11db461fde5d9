// kill -9 of the agent at every persisted phase, a kill in the middle of a
// running switch, and power cuts during confirmation: the host always ends
// either confirmed on the new system or back on the old one, never between.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Fleet } from "../harness/fleet.js";
import { buildFixtureSystem, type FixtureBehaviour } from "../harness/fixtures.js";
import { waitFor } from "../harness/exec.js";
import type { SimHost } from "../harness/sim-host.js";
import { FERRY_BIN } from "../harness/paths.js";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { allOnline, hostStatus, settled } from "../harness/status.js";

const AGENT_CONFIG = { confirmTimeout: 20, activationTimeout: 20 };

describe(
  "an agent killed at any instant resumes to a consistent host",
  { skip: process.getuid?.() !== 0 ? "needs root for network namespaces" : false },
  () => {
    let fleet: Fleet;
    let generation = 1;

    async function deployNext(host: SimHost, behaviour: FixtureBehaviour = "ok"): Promise<string> {
      const path = await buildFixtureSystem(host.name, ++generation, behaviour);
      await fleet.push([path]);
      const recorded = await fleet.cli(["deploy", `${host.name}=${path}`]);
      assert.equal(recorded.code, 0, recorded.stderr);
      return path;
    }

    /** Restarts the agent to stop dead after persisting `phase`, deploys a new generation, and waits for the pause. */
    async function deployPausedAfter(host: SimHost, phase: string, behaviour: FixtureBehaviour = "ok"): Promise<string> {
      await host.stopAgent();
      host.startAgent({ FERRY_AGENT_FAULT: `pause-after:${phase}` });
      const next = await deployNext(host, behaviour);
      await host.waitForLog(`pause after ${phase}`, (event) => event["msg"] === "fault injection: pausing after this phase" && event["phase"] === phase);
      return next;
    }

    /** Both views of the host agree and no transaction is left open. */
    function assertConsistent(host: SimHost, expected: string): void {
      assert.equal(host.currentSystem(), expected, "running system");
      assert.equal(host.profileSystem(), expected, "boot default");
      assert.equal(host.agentState().transaction, null, "no open transaction");
    }

    before(async () => {
      fleet = await Fleet.start("crash");
      for (const name of ["k-1", "r-trial", "r-switch"]) {
        await fleet.addHost(name, { agentConfig: { ...AGENT_CONFIG, ...(name === "r-switch" ? { strategy: "switch" } : {}) } });
      }
      const first = await Promise.all(["k-1", "r-trial", "r-switch"].map((name) => buildFixtureSystem(name, 1)));
      await fleet.push(first);
      await allOnline(fleet);
      const result = await fleet.cli(["deploy", `k-1=${first[0]}`, `r-trial=${first[1]}`, `r-switch=${first[2]}`, "--wait", "--timeout", "120"]);
      assert.equal(result.code, 0, result.stderr);
    });

    after(async () => {
      await fleet?.close();
    });

    const CASES: { phase: string; behaviour: FixtureBehaviour; outcome: "new" | "old" }[] = [
      { phase: "fetching", behaviour: "ok", outcome: "new" },
      { phase: "fetched", behaviour: "ok", outcome: "new" },
      { phase: "activating", behaviour: "ok", outcome: "old" },
      { phase: "confirming", behaviour: "ok", outcome: "new" },
      { phase: "confirmed", behaviour: "ok", outcome: "new" },
      { phase: "rolling-back", behaviour: "fail-activation", outcome: "old" },
    ];

    for (const { phase, behaviour, outcome } of CASES) {
      test(`kill -9 after persisting "${phase}" ends on the ${outcome} system`, async () => {
        const host = fleet.host("k-1");
        const previous = host.currentSystem();
        const next = await deployPausedAfter(host, phase, behaviour);
        await host.stopAgent("SIGKILL");
        assert.equal(host.agentState().transaction?.phase, phase, "the phase was persisted before the pause");
        host.startAgent();
        const status = await settled(fleet, "k-1");
        assertConsistent(host, outcome === "new" ? next : previous);
        assert.equal(status.currentSystem, host.currentSystem());
        assert.equal(status.phase, outcome === "new" ? "active" : "rolled-back");
        // Clear the log so the next case waits for its own pause.
        await host.stopAgent();
        host.startAgent();
        await allOnline(fleet);
      });
    }

    test("kill -9 while switch-to-configuration runs: the orphaned switch is awaited, then confirmed", async () => {
      const host = fleet.host("k-1");
      const next = await deployNext(host, "slow");
      await waitFor("switch running", () => host.agentState().transaction?.switchProcess || undefined, 30_000, 50);
      await host.stopAgent("SIGKILL");
      host.startAgent();
      await settled(fleet, "k-1");
      assertConsistent(host, next);
      assert.ok(host.agentLogText().includes("still running; waiting for it"));
    });

    test("a power cut during confirmation of a trial activation boots, and stays on, the old system", async () => {
      const host = fleet.host("r-trial");
      const previous = host.currentSystem();
      const next = await deployPausedAfter(host, "confirming");
      assert.equal(host.currentSystem(), next, "the trial system was running");
      await host.reboot();
      assert.equal(host.currentSystem(), previous, "trial left the boot default alone");
      host.startAgent();
      const status = await settled(fleet, "r-trial");
      assert.equal(status.phase, "rolled-back");
      assert.equal(status.lastError?.code, "E_INTERRUPTED");
      assertConsistent(host, previous);
    });

    test("a power cut during confirmation of a switch activation resumes the confirmation after boot", async () => {
      const host = fleet.host("r-switch");
      const next = await deployPausedAfter(host, "confirming");
      await host.reboot();
      assert.equal(host.currentSystem(), next, "switch made the new system the boot default");
      host.startAgent();
      const status = await settled(fleet, "r-switch");
      assert.equal(status.phase, "active");
      assertConsistent(host, next);
      assert.equal((await hostStatus(fleet, "r-switch")).currentSystem, next);
    });

    test("--mode boot installs for the next boot only; after the reboot the host reports it active", async () => {
      const host = fleet.host("r-switch");
      const previous = host.currentSystem();
      const path = await buildFixtureSystem(host.name, ++generation);
      await fleet.push([path]);
      const result = await fleet.cli(["deploy", `r-switch=${path}`, "--mode", "boot", "--wait", "--timeout", "60"]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal((await hostStatus(fleet, "r-switch")).phase, "boot-pending");
      assert.equal(host.currentSystem(), previous, "nothing changed in the running system");
      assert.equal(host.profileSystem(), path, "the next boot runs it");
      await host.reboot();
      host.startAgent();
      await waitFor("active after the reboot", async () => {
        const status = await hostStatus(fleet, "r-switch");
        return status.online && status.phase === "active" && status.currentSystem === path ? status : undefined;
      });
    });

    test("ferry agent gc keeps keepGenerations generations and both GC-rooted systems", async () => {
      const host = fleet.host("k-1");
      const current = host.currentSystem();
      const config = { ...JSON.parse(readFileSync(join(host.dir, "agent.json"), "utf8")), keepGenerations: 2 };
      writeFileSync(join(host.dir, "agent-gc.json"), JSON.stringify(config));
      const generations = async () =>
        (await host.run(["nix-env", "-p", "/nix/var/nix/profiles/system", "--list-generations"])).stdout.split("\n").filter(Boolean).length;
      assert.ok((await generations()) > 2, "several generations before");
      const gc = await host.run([process.execPath, FERRY_BIN, "agent", "gc", "--config", join(host.dir, "agent-gc.json")], 120_000);
      assert.equal(gc.code, 0, gc.stderr + gc.stdout);
      assert.equal(await generations(), 2);
      assert.equal((await host.run(["nix-store", "--check-validity", current])).code, 0, "the running system survives");
      assert.equal(host.currentSystem(), current);
    });
  },
);
