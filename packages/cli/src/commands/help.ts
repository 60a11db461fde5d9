import { FERRY_VERSION } from "@ferry/core";
import { parseVerb } from "../args.js";
import { groupHelp, overview, verbHelp, verbJson } from "../help.js";
import { FerryError, createOutput } from "../output.js";
import { ENV } from "../spec/env.js";
import { GROUPS, VERBS, allVerbs, resolveVerb } from "../spec/index.js";

/** `ferry help [VERB]...`: what `ferry VERB --help` prints. */
export async function helpCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS.help, args);
  const out = createOutput(values.json);
  if (positionals.length === 0) {
    out.result({ verbs: allVerbs().map(verbJson), groups: GROUPS, env: ENV }, () => overview());
    return 0;
  }
  const resolved = resolveVerb(positionals);
  if (resolved.kind === "verb" && resolved.rest.length === 0) {
    out.result(verbJson(resolved.spec), () => verbHelp(resolved.spec));
    return 0;
  }
  if (resolved.kind === "group" && resolved.rest.length === 0) {
    out.result(
      {
        group: resolved.path.join(" "),
        summary: GROUPS[resolved.path.join(" ")],
        verbs: allVerbs()
          .filter((spec) => spec.path[0] === resolved.path[0])
          .map(verbJson),
      },
      () => groupHelp(resolved.path),
    );
    return 0;
  }
  throw new FerryError("E_BAD_ARGUMENT", `no verb "${positionals.join(" ")}": ferry help lists them all`);
}

export async function versionCommand(args: string[]): Promise<number> {
  const { values } = parseVerb(VERBS.version, args);
  createOutput(values.json).result({ version: FERRY_VERSION }, () => `ferry ${FERRY_VERSION}\n`);
  return 0;
}
