import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { mustExec } from "./exec.js";

const SYSTEM_NIX = fileURLToPath(new URL("../fixtures/system.nix", import.meta.url));

export type FixtureBehaviour = "ok" | "fail-activation" | "fail-health" | "break-network" | "hang" | "slow";

/** Salt shared by one test run, so its store paths are new to every cache and host. */
export const RUN_SALT = randomBytes(6).toString("hex");

/** Builds a fixture system with the real Nix into the machine's store and returns its path. */
export async function buildFixtureSystem(name: string, generation: number, behaviour: FixtureBehaviour = "ok"): Promise<string> {
  const out = await mustExec(fixtureBuildArgv(name, generation, behaviour));
  return out.trim();
}

/** The nix-build command line of a fixture system: run it inside a simulated host to build there (same path as outside). */
export function fixtureBuildArgv(name: string, generation: number, behaviour: FixtureBehaviour = "ok"): string[] {
  return [
    "nix-build",
    SYSTEM_NIX,
    "--no-out-link",
    "--argstr",
    "name",
    name,
    "--arg",
    "generation",
    String(generation),
    "--argstr",
    "behaviour",
    behaviour,
    "--argstr",
    "salt",
    RUN_SALT,
    // Fixtures are built locally; asking the default public cache would only wait for a timeout here.
    "--option",
    "substituters",
    "",
  ];
}
