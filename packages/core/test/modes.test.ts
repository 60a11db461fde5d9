// The one vocabulary for activation modes and host phases.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ActivationMode, HostPhase } from "@ferry/protocol";
import { FerryError, MODES, assertWireMode, formatMode, formatPhase, modeFromWire, modeToWire, parseMode, parseOptionalMode } from "@ferry/core";

describe("modes", () => {
  test("every mode maps to its own wire value and back", () => {
    const wires = MODES.map(modeToWire);
    assert.equal(new Set(wires).size, MODES.length);
    assert.ok(!wires.includes(ActivationMode.ACTIVATION_MODE_UNSPECIFIED));
    for (const mode of MODES) assert.equal(modeFromWire(modeToWire(mode)), mode);
  });

  test("switch means switch, and trial has a name of its own", () => {
    assert.equal(modeToWire("switch"), ActivationMode.ACTIVATION_MODE_SWITCH);
    assert.equal(modeToWire("trial"), ActivationMode.ACTIVATION_MODE_TRIAL);
    assert.equal(modeFromWire(ActivationMode.ACTIVATION_MODE_SWITCH), "switch");
  });

  test("no mode is the host's own strategy, on the wire and for people", () => {
    assert.equal(modeToWire(undefined), ActivationMode.ACTIVATION_MODE_UNSPECIFIED);
    assert.equal(modeFromWire(ActivationMode.ACTIVATION_MODE_UNSPECIFIED), undefined);
    assert.equal(formatMode(ActivationMode.ACTIVATION_MODE_UNSPECIFIED), "host default");
    assert.equal(formatMode(ActivationMode.ACTIVATION_MODE_BOOT), "boot");
    // A value from a newer peer is not guessed at: the host decides.
    assert.equal(modeFromWire(99 as ActivationMode), undefined);
  });

  test("a deployment or rollout naming a mode number this version does not know is refused", () => {
    assert.equal(assertWireMode(ActivationMode.ACTIVATION_MODE_UNSPECIFIED), ActivationMode.ACTIVATION_MODE_UNSPECIFIED);
    assert.equal(assertWireMode(ActivationMode.ACTIVATION_MODE_TRIAL), ActivationMode.ACTIVATION_MODE_TRIAL);
    assert.throws(() => assertWireMode(99 as ActivationMode), { code: "E_BAD_ARGUMENT", message: "unknown activation mode 99" });
  });

  test("parsing accepts exactly the four names and says which are valid", () => {
    for (const mode of MODES) assert.equal(parseMode(mode), mode);
    assert.equal(parseOptionalMode(undefined), undefined);
    assert.equal(parseOptionalMode(""), undefined);
    assert.equal(parseOptionalMode(null, "mode"), undefined);
    for (const bad of ["Switch", "dry-activate", "default", " boot"]) {
      assert.throws(
        () => parseMode(bad, "--mode"),
        (error: unknown) =>
          error instanceof FerryError &&
          error.code === "E_BAD_ARGUMENT" &&
          error.message === `--mode must be trial, switch, test or boot, got ${JSON.stringify(bad)}`,
      );
    }
  });

  test("phases read as lower-case words joined by dashes", () => {
    assert.equal(formatPhase(HostPhase.HOST_PHASE_BOOT_PENDING), "boot-pending");
    assert.equal(formatPhase(HostPhase.HOST_PHASE_ROLLING_BACK), "rolling-back");
    assert.equal(formatPhase(HostPhase.HOST_PHASE_ACTIVE), "active");
    assert.equal(formatPhase(99 as HostPhase), "unknown");
  });
});
