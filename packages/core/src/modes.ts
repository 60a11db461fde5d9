import { ActivationMode, HostPhase } from "@ferry/protocol/agent-channel";
import { FerryError } from "./errors.js";

/**
 * Ferry's one vocabulary for how a host puts a new system in place. `switch`,
 * `test` and `boot` mean what they mean to nixos-rebuild; `trial` is Ferry's
 * safe default (test first, make it the boot default only once confirmed). A
 * deployment that names no mode leaves the choice to the host's own
 * configured strategy.
 */
export const MODES = ["trial", "switch", "test", "boot"] as const;
export type Mode = (typeof MODES)[number];

/** What the agent does when neither the deployment nor its own configuration names a mode. */
export const DEFAULT_MODE = "trial" satisfies Mode;

/** One line per mode, for help texts and the agent's schema. */
export const MODE_SUMMARY: Readonly<Record<Mode, string>> = {
  trial: "switch-to-configuration test, confirm, then make it the boot default (Ferry's safe default)",
  switch: "switch-to-configuration switch (running and boot default at once), then confirm",
  test: "switch-to-configuration test, then confirm; never the boot default",
  boot: "switch-to-configuration boot: runs after the next reboot",
};

const TO_WIRE: Readonly<Record<Mode, ActivationMode>> = {
  trial: ActivationMode.ACTIVATION_MODE_TRIAL,
  switch: ActivationMode.ACTIVATION_MODE_SWITCH,
  test: ActivationMode.ACTIVATION_MODE_TEST,
  boot: ActivationMode.ACTIVATION_MODE_BOOT,
};

export function isMode(value: string): value is Mode {
  return (MODES as readonly string[]).includes(value);
}

/** Reads a mode an operator typed; `source` names where it came from, for the error. */
export function parseMode(text: string, source = "--mode"): Mode {
  if (isMode(text)) return text;
  throw new FerryError("E_BAD_ARGUMENT", `${source} must be ${MODES.slice(0, -1).join(", ")} or ${MODES.at(-1)}, got ${JSON.stringify(text)}`);
}

/** Reads an optional mode: absent or empty means "the host's own strategy". */
export function parseOptionalMode(text: string | undefined | null, source = "--mode"): Mode | undefined {
  return text === undefined || text === null || text === "" ? undefined : parseMode(text, source);
}

/** undefined: the host's own configured strategy. */
export function modeToWire(mode: Mode | undefined): ActivationMode {
  return mode === undefined ? ActivationMode.ACTIVATION_MODE_UNSPECIFIED : TO_WIRE[mode];
}

/** undefined for "unspecified" and for values this version does not know: both leave the choice to the host. */
export function modeFromWire(wire: ActivationMode): Mode | undefined {
  return MODES.find((mode) => TO_WIRE[mode] === wire);
}

/** Refuses a mode number this version does not know; unspecified (the host's own strategy) is fine. */
export function assertWireMode(wire: ActivationMode): ActivationMode {
  if (wire !== ActivationMode.ACTIVATION_MODE_UNSPECIFIED && modeFromWire(wire) === undefined) {
    throw new FerryError("E_BAD_ARGUMENT", `unknown activation mode ${wire}`);
  }
  return wire;
}

/** A wire mode for people: the mode's name, or "host default". */
export function formatMode(wire: ActivationMode): string {
  return modeFromWire(wire) ?? "host default";
}

/** A host phase for people and JSON: HOST_PHASE_BOOT_PENDING becomes "boot-pending". */
export function formatPhase(phase: HostPhase): string {
  return (HostPhase[phase] ?? "UNKNOWN")
    .replace(/^HOST_PHASE_/, "")
    .toLowerCase()
    .replaceAll("_", "-");
}
