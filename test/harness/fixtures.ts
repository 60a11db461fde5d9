import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { mustExec } from "./exec.js";

const SYSTEM_NIX = fileURLToPath(new URL("../fixtures/system.nix", import.meta.url));

export type FixtureBehaviour = "ok" | "fail-activation" | "fail-health" | "break-network" | "hang" | "slow";

/** Salt shared by one test run, so its store paths are new to every cache and host. */
export const RUN_SALT = randomBytes(6).toString("hex");

const REPO = fileURLToPath(new URL("../..", import.meta.url));

/** A ferry-agent.service for the system, starting an agent build of its own named by `tag`, with `config` as --config. */
export interface FixtureAgentUnit {
  tag: string;
  config: string;
}

/** Builds a fixture system with the real Nix into the machine's store and returns its path. */
export async function buildFixtureSystem(name: string, generation: number, behaviour: FixtureBehaviour = "ok", agentUnit?: FixtureAgentUnit): Promise<string> {
  const out = await mustExec(fixtureBuildArgv(name, generation, behaviour, agentUnit));
  return out.trim();
}

/** The nix-build command line of a fixture system: run it inside a simulated host to build there (same path as outside). */
export function fixtureBuildArgv(name: string, generation: number, behaviour: FixtureBehaviour = "ok", agentUnit?: FixtureAgentUnit): string[] {
  const agentArgs = agentUnit
    ? [
        ["agentTag", agentUnit.tag],
        ["agentConfig", agentUnit.config],
        ["cliDir", join(REPO, "packages", "cli")],
        ["nodeModules", join(REPO, "node_modules")],
        ["node", process.execPath],
      ].flatMap(([key, value]) => ["--argstr", key as string, value as string])
    : [];
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
    ...agentArgs,
    // Fixtures are built locally; asking the default public cache would only wait for a timeout here.
    "--option",
    "substituters",
    "",
  ];
}
