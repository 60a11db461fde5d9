import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { Nix } from "@ferry/core";
import { dryActivate } from "../src/dry-activate.js";
import { compileAgentConfig } from "../src/settings.js";
import { SwitchLock } from "../src/switch-lock.js";
import { desired, fakeHost, NEXT, PREV, SWITCH } from "./helpers/fake-host.js";
import type { AgentConfig } from "../src/config.js";
import { IntentFloor } from "../src/intent-floor.js";
import { IntentGate } from "../src/intent-policy.js";

const command = { requestId: "r1", storePath: NEXT, intent: undefined };

describe("dry-activate takes the switch lock", () => {
  test("refused at once while an activation of this agent holds it; the switch script does not run", async () => {
    const host = fakeHost({ previous: PREV });
    try {
      const lock = new SwitchLock(host.config.switchLockFile);
      let inSwitch!: () => void;
      const switchStarted = new Promise<void>((resolve) => (inSwitch = resolve));
      let finishSwitch!: () => void;
      const switchMayEnd = new Promise<void>((resolve) => (finishSwitch = resolve));
      host.runner.script = async (argv) => {
        if (argv[0] === `${NEXT}${SWITCH}` && argv[1] === "switch") {
          inSwitch();
          await switchMayEnd;
        }
        return undefined;
      };
      const activation = host.transaction({ switchLock: lock }).run(desired(3));
      await switchStarted;
      const outcome = await dryActivate(command, compileAgentConfig(host.config), new Nix(host.runner), lock, host.log, openGate(host));
      assert.equal(outcome.success, false);
      assert.equal(outcome.errorCode, "E_SWITCH_LOCKED");
      assert.match(outcome.errorMessage, /activating serial 3/);
      assert.ok(!host.runner.switches.some(([, action]) => action === "dry-activate"), "no dry-activate ran beside the switch");
      finishSwitch();
      assert.equal((await activation).success, true);
      const after = await dryActivate(command, compileAgentConfig(host.config), new Nix(host.runner), lock, host.log, openGate(host));
      assert.equal(after.success, true, after.errorMessage);
    } finally {
      host.cleanup();
    }
  });

  test("an activation arriving during a dry-activate waits for it, then runs", async () => {
    const host = fakeHost({ previous: PREV });
    try {
      const lock = new SwitchLock(host.config.switchLockFile);
      const order: string[] = [];
      let finishDry!: () => void;
      const dryMayEnd = new Promise<void>((resolve) => (finishDry = resolve));
      let inDry!: () => void;
      const dryStarted = new Promise<void>((resolve) => (inDry = resolve));
      host.runner.script = async (argv) => {
        if (argv[0]?.endsWith(SWITCH)) order.push(`${argv[1]} start`);
        if (argv[1] === "dry-activate") {
          inDry();
          await dryMayEnd;
          order.push("dry-activate end");
        }
        return undefined;
      };
      const dry = dryActivate(command, compileAgentConfig(host.config), new Nix(host.runner), lock, host.log, openGate(host));
      await dryStarted;
      const activation = host.transaction({ switchLock: lock }).run(desired(4));
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.deepEqual(order, ["dry-activate start"], "the activation has not switched yet");
      finishDry();
      assert.equal((await dry).success, true);
      assert.equal((await activation).success, true);
      assert.deepEqual(order, ["dry-activate start", "dry-activate end", "switch start"]);
    } finally {
      host.cleanup();
    }
  });

  test("refused with E_SWITCH_LOCKED while a process outside the agent holds the lock file", async () => {
    const host = fakeHost({ previous: PREV });
    writeFileSync(host.config.switchLockFile, "");
    const holder = spawn("flock", [host.config.switchLockFile, "sleep", "30"], { stdio: "ignore" });
    try {
      const lock = new SwitchLock(host.config.switchLockFile);
      for (let i = 0; i < 50 && !lock.outsideHolder(); i++) await new Promise((resolve) => setTimeout(resolve, 50));
      const outcome = await dryActivate(command, compileAgentConfig(host.config), new Nix(host.runner), lock, host.log, openGate(host));
      assert.equal(outcome.errorCode, "E_SWITCH_LOCKED");
      assert.match(outcome.errorMessage, new RegExp(`held by pid ${holder.pid} \\(flock`));
      assert.deepEqual(host.runner.switches, []);
    } finally {
      holder.kill("SIGKILL");
      host.cleanup();
    }
  });
});

/** The intent policy of a host that requires nothing: every mode allowed unsigned. */
function openGate(host: { config: AgentConfig; stateDir: string }): IntentGate {
  return new IntentGate(compileAgentConfig(host.config), new IntentFloor(host.stateDir), Date.now);
}
