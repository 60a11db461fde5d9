// The agent's state directory on a tiny tmpfs that fills up while an
// unhealthy system is on trial: the agent must still put the previous system
// back (before, the state write threw, the agent crashed, and on every restart
// failed the same way while the host stayed on the bad system), then write
// down what it did once there is room.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { closeSync, openSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { Fleet } from "../harness/fleet.js";
import { buildFixtureSystem } from "../harness/fixtures.js";
import { exec, mustExec, waitFor } from "../harness/exec.js";
import type { SimHost } from "../harness/sim-host.js";
import { allOnline, settled } from "../harness/status.js";

const HEALTH_CHECK = { type: "command", argv: ["/bin/sh", "-c", 'test "$(cat /run/fixture-health 2>/dev/null || echo ok)" = ok'], timeout: 5 };
const AGENT_CONFIG = { confirmTimeout: 8, activationTimeout: 10, healthChecks: [HEALTH_CHECK] };

describe("a full disk under the agent's state directory", { skip: process.getuid?.() !== 0 ? "needs root for namespaces and mounts" : false }, () => {
  let fleet: Fleet;
  let host: SimHost;
  let mounted = false;
  const filler = (): string => join(host.stateDir, "filler");

  function fillDisk(): void {
    const fd = openSync(filler(), "a");
    try {
      for (;;) writeSync(fd, Buffer.alloc(4096, 1));
    } catch (error) {
      assert.equal((error as NodeJS.ErrnoException).code, "ENOSPC");
    } finally {
      closeSync(fd);
    }
  }

  before(async () => {
    fleet = await Fleet.start("diskfull");
    host = await fleet.addHost("d-1", { agentConfig: AGENT_CONFIG, start: false });
    // Mounted before the agent starts, so the host's private mount namespace inherits it.
    await mustExec(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "ferry-e2e-full", host.stateDir]);
    mounted = true;
    host.startAgent();
    const first = await buildFixtureSystem("d-1", 1);
    await fleet.push([first]);
    await allOnline(fleet);
    const result = await fleet.cli(["deploy", `d-1=${first}`, "--wait", "--timeout", "120"]);
    assert.equal(result.code, 0, result.stderr);
  });

  after(async () => {
    await host?.stopAgent("SIGKILL");
    if (mounted) await exec(["umount", host.stateDir]);
    await fleet?.close();
  });

  test("the unhealthy trial system is rolled back while the disk is full; the state is written once there is room", async () => {
    const previous = host.currentSystem();
    await host.stopAgent();
    host.startAgent({ FERRY_AGENT_FAULT: "pause-after:confirming" });
    const bad = await buildFixtureSystem("d-1", 2, "fail-health");
    await fleet.push([bad]);
    assert.equal((await fleet.cli(["deploy", `d-1=${bad}`])).code, 0);
    await host.waitForLog("pause after confirming", (event) => event["msg"] === "fault injection: pausing after this phase" && event["phase"] === "confirming");
    assert.equal(host.currentSystem(), bad, "the bad system is on trial");
    await host.stopAgent("SIGKILL");
    fillDisk();

    host.startAgent();
    const status = await settled(fleet, "d-1", 90_000);
    assert.equal(status.phase, "rolled-back");
    // Checks are retried until the deadline; which of the two ends it depends on timing.
    assert.ok(["E_HEALTH_CHECK_FAILED", "E_CONFIRM_TIMEOUT"].includes(status.lastError?.code ?? ""), status.lastError?.code);
    assert.equal(host.currentSystem(), previous, "the previous system runs again");
    assert.equal(host.profileSystem(), previous);
    assert.ok(host.agentRunning, "the agent did not crash");
    assert.ok(host.agentLogText().includes('"code":"E_STATE_WRITE_FAILED"'), "the failed write is logged with its code");
    assert.equal(host.agentState().transaction?.phase, "confirming", "the disk still holds the last phase it could");

    rmSync(filler());
    await waitFor("state written again", () => (host.agentState().transaction === null ? true : undefined), 20_000, 250);
    assert.equal(host.agentState().lastResult?.errorCode, status.lastError?.code);
  });
});
