import { existsSync, mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { FerryError, ProcessRunner, describeExit } from "@ferry/core";
import { loadAgentConfig } from "@ferry/agent";
import { parseVerb } from "../args.js";
import { VERBS } from "../spec/index.js";
import { runAgentUntilSignal } from "./agent-run.js";

const INSIDE_FLAG = "--inside-namespace";

/**
 * `ferry dev host`: an agent for trying Ferry on one machine. It gets a
 * private /nix and /run (a mount namespace), so the system profile it
 * switches, the store it fills and /run/current-system are its own and this
 * machine's are left alone.
 */
export async function devCommand(args: string[]): Promise<number> {
  if (args[0] !== "host") throw new FerryError("E_BAD_ARGUMENT", "usage: ferry dev host --config FILE [--dir DIR]");
  const { values } = parseVerb(VERBS["dev host"], args.slice(1));
  const configFile = resolve(values.config);
  // Validate before entering the namespace, so a mistake is reported plainly.
  const config = loadAgentConfig(configFile);
  const dir = resolve(values.dir ?? `/var/tmp/ferry-dev/${config.hostName}`);
  const stateDir = `${dir}/state`;
  if (values["inside-namespace"]) return insideNamespace(configFile, dir, stateDir);

  if (process.getuid?.() !== 0) throw new FerryError("E_BAD_ARGUMENT", "ferry dev host needs root: it mounts a private /nix and /run");
  mkdirSync(`${dir}/nix`, { recursive: true });
  mkdirSync(stateDir, { recursive: true });
  if (!existsSync("/nix")) mkdirSync("/nix");
  process.stderr.write(
    [
      `dev host ${config.hostName}: private /nix = ${dir}/nix, private /run, state in ${stateDir}`,
      "  Only /nix and /run are private: a real NixOS system's switch-to-configuration would still change",
      "  this machine's /etc and systemd units. Deploy fixture systems here (the quick start's), real ones",
      "  to real hosts running the NixOS module.",
      "",
    ].join("\n"),
  );
  const main = fileURLToPath(new URL("../main.js", import.meta.url));
  const result = await new ProcessRunner().run({
    argv: ["unshare", "--mount", "--propagation", "private", "--", process.execPath, main, "dev", "host", "--config", configFile, "--dir", dir, INSIDE_FLAG],
    purpose: "sandbox",
    inheritStdio: true,
  });
  if (result.signal === "SIGINT" || result.signal === "SIGTERM") return 0;
  return result.exitCode ?? 1;
}

async function insideNamespace(configFile: string, dir: string, stateDir: string): Promise<number> {
  const runner = new ProcessRunner();
  for (const argv of [
    ["mount", "--bind", `${dir}/nix`, "/nix"],
    ["mount", "-t", "tmpfs", "ferry-dev-run", "/run"],
  ]) {
    const mounted = await runner.run({ argv, purpose: "sandbox", timeoutMs: 10_000 });
    if (mounted.exitCode !== 0) {
      throw new FerryError("E_COMMAND_FAILED", `${argv.join(" ")} ${describeExit(mounted)}`, { output: mounted.stderr });
    }
  }
  return runAgentUntilSignal(loadAgentConfig(configFile, { stateDir }));
}
