// The GC schedule as the agent runs it: both readers (the agent's own and
// node-cron for what it leaves), the activation guard, and stop().
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { Nix, silentLogger, type CommandResult, type CommandRunner, type CommandSpec } from "@ferry/core";
import { scheduleGarbageCollection } from "../src/garbage-collection.js";
import { waitFor } from "../../../test/harness/exec.js";

class RecordingRunner implements CommandRunner {
  readonly calls: string[] = [];
  async run(spec: CommandSpec): Promise<CommandResult> {
    this.calls.push(spec.argv.join(" "));
    return { argv: spec.argv, exitCode: 0, signal: null, stdout: "0 store paths deleted, 0.00 MiB freed\n", stderr: "", timedOut: false };
  }
}

const config = (gcSchedule: string) => ({ profile: "/nix/var/nix/profiles/system", keepGenerations: 3, gcSchedule });

for (const [reader, everySecond] of [
  ["the agent's own reader", "* * * * * *"],
  // "?" is node-cron's, so this one is left to it.
  ["node-cron", "* * * * * ?"],
] as const) {
  test(`${reader}: runs on schedule, never during an activation, and not after stop()`, { timeout: 20_000 }, async () => {
    const runner = new RecordingRunner();
    let busy = true;
    const gc = scheduleGarbageCollection(config(everySecond), new Nix(runner), silentLogger(), () => busy);
    assert.ok(gc);
    try {
      await sleep(2_500);
      assert.deepEqual(runner.calls, [], "an activation is in progress: nothing runs");
      busy = false;
      await waitFor("the first collection's two commands", () => runner.calls.length >= 2, 5_000, 50);
      assert.deepEqual(runner.calls.slice(0, 2), ["nix-env -p /nix/var/nix/profiles/system --delete-generations +3", "nix-store --gc"]);
    } finally {
      gc.stop();
    }
    const stoppedAt = runner.calls.length;
    await sleep(2_500);
    assert.equal(runner.calls.length, stoppedAt, "nothing runs after stop()");
  });
}

test("no schedule: nothing is scheduled", () => {
  assert.equal(
    scheduleGarbageCollection(config(""), new Nix(new RecordingRunner()), silentLogger(), () => false),
    undefined,
  );
});
