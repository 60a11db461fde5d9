import { parseVerb } from "../args.js";
import { bashCompletion } from "../completion/bash.js";
import { fishCompletion } from "../completion/fish.js";
import { zshCompletion } from "../completion/zsh.js";
import { createOutput } from "../output.js";
import { VERBS } from "../spec/index.js";

const GENERATORS: Record<string, () => string> = { bash: bashCompletion, zsh: zshCompletion, fish: fishCompletion };

export async function completionCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS.completion, args);
  const shell = positionals[0] as string;
  const script = (GENERATORS[shell] as () => string)();
  createOutput(values.json).result({ shell, script }, () => script);
  return 0;
}
