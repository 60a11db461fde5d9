import { FerryError, Nix, ProcessRunner, generateKeyPair } from "@ferry/core";
import { parseVerb, requireString } from "../args.js";
import { createOutput } from "../output.js";
import { VERBS } from "../spec/index.js";

export async function keysCommand(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  if (verb !== "generate") throw new FerryError("E_BAD_ARGUMENT", `unknown verb 'keys ${verb ?? ""}': use generate`);
  const { values } = parseVerb(VERBS["keys generate"], rest);
  const name = requireString(values.name, "--name");
  if (!/^[A-Za-z0-9._-]+$/.test(name))
    throw new FerryError("E_BAD_ARGUMENT", `key name ${JSON.stringify(name)} may hold only letters, digits, '.', '_' and '-'`);
  const dir = requireString(values.out, "--out");
  const { secretFile, publicFile, publicKey } = await generateKeyPair(new Nix(new ProcessRunner()), name, dir, { force: values.force });
  createOutput(values.json).result({ name, secretFile, publicFile, publicKey }, () => `secret key: ${secretFile}\npublic key: ${publicFile}\n${publicKey}\n`);
  return 0;
}
