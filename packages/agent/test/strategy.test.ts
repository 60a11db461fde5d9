// Which mode the agent runs a deployment in.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ActivationMode } from "@ferry/protocol";
import { strategyFor } from "../src/reconciler.js";

test("a deployment's mode is obeyed as named; switch is a plain switch, not the host's trial", () => {
  assert.equal(strategyFor(ActivationMode.ACTIVATION_MODE_SWITCH, "trial"), "switch");
  assert.equal(strategyFor(ActivationMode.ACTIVATION_MODE_TRIAL, "switch"), "trial");
  assert.equal(strategyFor(ActivationMode.ACTIVATION_MODE_TEST, "trial"), "test");
  assert.equal(strategyFor(ActivationMode.ACTIVATION_MODE_BOOT, "trial"), "boot");
});

test("a deployment naming no mode, or one this agent does not know, runs in the host's own strategy", () => {
  assert.equal(strategyFor(ActivationMode.ACTIVATION_MODE_UNSPECIFIED, "boot"), "boot");
  assert.equal(strategyFor(ActivationMode.ACTIVATION_MODE_UNSPECIFIED, "trial"), "trial");
  assert.equal(strategyFor(42 as ActivationMode, "switch"), "switch");
});
