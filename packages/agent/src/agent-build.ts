import { readFileSync, realpathSync } from "node:fs";
import { FERRY_VERSION, isStorePath, parseStorePath } from "@ferry/core";

/**
 * Which agent build a process runs, or a unit would start: the store path of
 * the Ferry package (the program's, or the entry script's, whose store path
 * is the same package) and the arguments after the program, which carry the
 * configuration file. A package or configuration change makes another build.
 */
export interface AgentBuild {
  /** Store path of the package, or the entry script itself when it runs from outside the store. */
  package: string;
  args: string[];
}

/** The store path a file lies in, or undefined outside the store. */
function storePathOf(path: string): string | undefined {
  const top = path.split("/").slice(0, 4).join("/");
  return isStorePath(top) ? top : undefined;
}

function packageOf(path: string): string {
  return storePathOf(path) ?? path;
}

/** The build this process was started from (node, entry script, arguments). */
export function runningBuild(argv: readonly string[] = process.argv): AgentBuild {
  const script = argv[1] ?? "";
  let resolved = script;
  try {
    resolved = realpathSync(script);
  } catch {
    // Keep the path as given.
  }
  // A package's entry script may be reached through a symlink; the path as started names the package.
  const started = storePathOf(script) ? script : resolved;
  return { package: packageOf(started), args: argv.slice(2) };
}

/**
 * The build a systemd unit file starts, from its ExecStart= line; undefined
 * when the file is absent or has none. Only what NixOS writes is understood:
 * one ExecStart, words split on spaces, optional "…" quotes.
 */
export function unitBuild(unitFile: string): AgentBuild | undefined {
  let text: string;
  try {
    text = readFileSync(unitFile, "utf8");
  } catch {
    return undefined;
  }
  const line = text
    .split("\n")
    .map((entry) => entry.trim())
    .filter((entry) => entry.startsWith("ExecStart=") && entry.length > "ExecStart=".length)
    .at(-1);
  if (!line) return undefined;
  const words = (line.slice("ExecStart=".length).match(/"[^"]*"|\S+/g) ?? []).map((word) => word.replace(/^"(.*)"$/, "$1"));
  const program = (words[0] ?? "").replace(/^[@\-:+!]+/, "");
  if (!program.startsWith("/")) return undefined;
  return { package: packageOf(program), args: words.slice(1) };
}

export function sameBuild(a: AgentBuild, b: AgentBuild): boolean {
  return a.package === b.package && a.args.length === b.args.length && a.args.every((arg, i) => arg === b.args[i]);
}

export function describeBuild(build: AgentBuild): string {
  return [build.package, ...build.args].join(" ");
}

/**
 * The version an agent reports: Ferry's version, plus the package's store
 * hash when it runs from the store, so two builds of one version differ in
 * `ferry status` (semver build metadata).
 */
export function agentVersion(build: AgentBuild): string {
  return isStorePath(build.package) ? `${FERRY_VERSION}+${parseStorePath(build.package).hash.slice(0, 12)}` : FERRY_VERSION;
}
