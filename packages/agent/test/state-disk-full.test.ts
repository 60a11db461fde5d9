// A full disk under the agent's state directory (a real, tiny tmpfs): the
// agent must still roll an unhealthy system back, and write down what it did
// once there is room again.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HostPhase } from "@ferry/protocol";
import { StateFile } from "../src/state-file.js";
import { capturingLogger, desired, fakeHost, NEXT, PREV, SWITCH } from "./helpers/fake-host.js";

const root = mkdtempSync(join(tmpdir(), "ferry-disk-full-"));
const mountPoint = join(root, "state");
mkdirSync(mountPoint);
const mounted = process.getuid?.() === 0 && spawnSync("mount", ["-t", "tmpfs", "-o", "size=128k,mode=0700", "ferry-test-full", mountPoint]).status === 0;

const filler = join(mountPoint, "filler");

/** Writes until the filesystem refuses with ENOSPC. */
function fillDisk(): void {
  const fd = openSync(filler, "a");
  const chunk = Buffer.alloc(4096, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (error) {
    assert.equal((error as NodeJS.ErrnoException).code, "ENOSPC");
  } finally {
    closeSync(fd);
  }
}

const onDisk = (): { appliedSerial: number; transaction: { phase: string } | null; lastResult: { phase: number } | null } =>
  JSON.parse(readFileSync(join(mountPoint, "state.json"), "utf8"));

describe("a full disk under the state directory", { skip: mounted ? false : "needs root to mount a tmpfs" }, () => {
  before(() => {
    rmSync(filler, { force: true });
  });
  after(() => {
    if (mounted) spawnSync("umount", [mountPoint]);
    rmSync(root, { recursive: true, force: true });
  });

  test("a failed switch is rolled back although its state cannot be written, and recorded once it can", async () => {
    const host = fakeHost({ previous: PREV, stateDir: mountPoint });
    const { log, events } = capturingLogger();
    const state = new StateFile(mountPoint, log);
    try {
      host.runner.script = (argv) => {
        if (argv[0] !== `${NEXT}${SWITCH}`) return undefined;
        fillDisk();
        return { exitCode: 4, stderr: "fixture-app.service failed" };
      };
      const result = await host.transaction({ state, log }).run(desired(5));
      assert.equal(result.phase, HostPhase.HOST_PHASE_ROLLED_BACK);
      assert.equal(result.errorCode, "E_ACTIVATION_FAILED");
      assert.equal(host.current(), PREV, "the previous system runs again");
      assert.deepEqual(host.runner.switches.at(-1), [PREV, "switch"]);
      assert.equal(onDisk().transaction?.phase, "activating", "the disk keeps the last phase it could hold");
      assert.equal(state.pendingWrite, true);
      assert.ok(events.some((event) => event["code"] === "E_STATE_WRITE_FAILED"));

      // A restart while the disk is still full ends the same way instead of failing again.
      const restarted = new StateFile(mountPoint, log);
      const again = await host.transaction({ state: restarted, log }).resume();
      assert.equal(again?.phase, HostPhase.HOST_PHASE_ROLLED_BACK);
      assert.equal(again?.errorCode, "E_INTERRUPTED");
      assert.equal(host.current(), PREV);

      rmSync(filler);
      assert.equal(restarted.flush(), true);
      const written = onDisk();
      assert.equal(written.transaction, null);
      assert.equal(written.appliedSerial, 5);
      assert.equal(written.lastResult?.phase, HostPhase.HOST_PHASE_ROLLED_BACK);
      restarted.close();
    } finally {
      state.close();
      rmSync(filler, { force: true });
      host.cleanup();
    }
  });

  test("a full disk before the switch: nothing is started, FAILED with E_STATE_WRITE_FAILED", async () => {
    const host = fakeHost({ previous: PREV, stateDir: mountPoint });
    const state = new StateFile(mountPoint, host.log);
    try {
      fillDisk();
      const result = await host.transaction({ state }).run(desired(6));
      assert.equal(result.phase, HostPhase.HOST_PHASE_FAILED);
      assert.equal(result.errorCode, "E_STATE_WRITE_FAILED");
      assert.deepEqual(host.runner.calls, [], "no fetch, no switch");
      assert.equal(host.current(), PREV);
      assert.equal(state.state.transaction, null);
      assert.equal(state.state.appliedSerial, 6, "the refusal is the answer to serial 6; a newer deploy tries again");
    } finally {
      state.close();
      rmSync(filler, { force: true });
      host.cleanup();
    }
  });
});
