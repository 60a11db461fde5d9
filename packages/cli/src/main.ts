#!/usr/bin/env node
import { FerryError } from "@ferry/core";
import { groupHelp, overview, verbHelp } from "./help.js";
import { reportError } from "./output.js";
import { childrenOf, resolveVerb } from "./spec/index.js";
import { closest } from "./suggest.js";
import { COMMANDS } from "./dispatch.js";

/** --help or -h among a verb's own arguments (not after "--"). */
function asksForHelp(args: readonly string[]): boolean {
  const end = args.indexOf("--");
  return (end === -1 ? args : args.slice(0, end)).some((arg) => arg === "--help" || arg === "-h");
}

async function run(argv: string[]): Promise<number> {
  const first = argv[0];
  if (first === undefined) {
    process.stderr.write(overview());
    return 2;
  }
  // `ferry --help` and `ferry --version` are the verbs help and version, --json included.
  const words = first === "--help" || first === "-h" ? ["help", ...argv.slice(1)] : first === "--version" ? ["version", ...argv.slice(1)] : argv;
  const resolved = resolveVerb(words);
  if (resolved.kind === "unknown") {
    const where = resolved.path.length > 0 ? `ferry ${resolved.path.join(" ")} ` : "ferry ";
    const guess = closest(resolved.word, childrenOf(resolved.path));
    throw new FerryError(
      "E_BAD_ARGUMENT",
      `unknown command ${JSON.stringify(`${where}${resolved.word}`)}${guess ? `; did you mean ${where}${guess}?` : ""} (${where.trim()} --help lists the verbs)`,
    );
  }
  if (resolved.kind === "group") {
    if (asksForHelp(resolved.rest)) {
      process.stdout.write(groupHelp(resolved.path));
      return 0;
    }
    throw new FerryError("E_BAD_ARGUMENT", `ferry ${resolved.path.join(" ")} needs a verb: ${childrenOf(resolved.path).join(", ")}`);
  }
  if (asksForHelp(resolved.rest)) {
    process.stdout.write(verbHelp(resolved.spec));
    return 0;
  }
  const load = COMMANDS[words[0] as string];
  if (!load) throw new FerryError("E_INTERNAL", `no command module for ${JSON.stringify(words[0])}`);
  const command = await load();
  return command(words.slice(1));
}

const argv = process.argv.slice(2);
run(argv)
  .catch(async (error: unknown) => {
    const { explainFailure } = await import("./client.js");
    return reportError(await explainFailure(error), argv.includes("--json"));
  })
  .then((code) => {
    process.exitCode = code;
  });
