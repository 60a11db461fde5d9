import { parseArgs, type ParseArgsConfig } from "node:util";
import { FerryError } from "@ferry/core";
import { closest } from "./suggest.js";
import type { FlagValues, VerbSpec } from "./spec/types.js";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** The parseArgs options of a verb, derived from its table entry: nothing else declares flags. */
export function parseOptions(spec: VerbSpec): Options {
  const options: Options = {};
  for (const [name, flag] of Object.entries(spec.flags)) {
    const option: Options[string] = { type: flag.type };
    if (flag.multiple) option.multiple = true;
    if (flag.short) option.short = flag.short;
    if (flag.default !== undefined) option.default = Array.isArray(flag.default) ? [...(flag.default as string[])] : (flag.default as string | boolean);
    options[name] = option;
  }
  return options;
}

/** Parses a verb's arguments by its table entry: unknown flags, bad choices and a wrong number of arguments are E_BAD_ARGUMENT. */
export function parseVerb<V extends VerbSpec>(spec: V, args: string[]): { values: FlagValues<V["flags"]>; positionals: string[] } {
  const name = `ferry ${spec.path.join(" ")}`;
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({ args, options: parseOptions(spec), allowPositionals: spec.positionals !== undefined, strict: true });
  } catch (error) {
    throw new FerryError("E_BAD_ARGUMENT", describeParseError(error as Error & { code?: string }, spec, name));
  }
  for (const [flag, declared] of Object.entries(spec.flags)) {
    const value = parsed.values[flag];
    if (declared.required && (value === undefined || value === ""))
      throw new FerryError("E_BAD_ARGUMENT", `${name} needs --${flag}${declared.value ? ` ${declared.value}` : ""} (${name} --help lists its flags)`);
  }
  for (const [flag, value] of Object.entries(parsed.values)) {
    const choices = spec.flags[flag]?.choices;
    for (const one of Array.isArray(value) ? value : [value]) {
      if (choices && typeof one === "string" && !choices.includes(one))
        throw new FerryError("E_BAD_ARGUMENT", `--${flag} must be ${choices.join(", ")}; got ${JSON.stringify(one)}`);
    }
  }
  const positional = spec.positionals;
  const count = parsed.positionals.length;
  if (positional && (count < positional.min || (positional.max !== undefined && count > positional.max)))
    throw new FerryError("E_BAD_ARGUMENT", `usage: ${name} ${positional.synopsis} (${name} --help lists its flags)`);
  for (const value of parsed.positionals) {
    if (positional?.choices && !positional.choices.includes(value))
      throw new FerryError("E_BAD_ARGUMENT", `${name} takes ${positional.choices.join(", ")}; got ${JSON.stringify(value)}`);
  }
  return parsed as { values: FlagValues<V["flags"]>; positionals: string[] };
}

function describeParseError(error: Error & { code?: string }, spec: VerbSpec, name: string): string {
  const flags = Object.keys(spec.flags).map((flag) => `--${flag}`);
  const quoted = /'(-[^' ]+)/.exec(error.message)?.[1];
  switch (error.code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION": {
      const guess = quoted === undefined ? undefined : closest(quoted, flags);
      return `${name} has no flag ${quoted ?? "?"}${guess ? `; did you mean ${guess}?` : ""} (${name} --help lists its flags)`;
    }
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return `${name} takes no arguments, got ${JSON.stringify(/'([^']*)'/.exec(error.message)?.[1] ?? "")}`;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE": {
      const flag = quoted?.split(/[ =]/)[0]?.replace(/^--?/, "") ?? "";
      const value = spec.flags[flag]?.value;
      return spec.flags[flag]?.type === "boolean" ? `--${flag} takes no value` : `--${flag} needs a value${value ? ` (${value})` : ""}`;
    }
    default:
      return `${name}: ${error.message}`;
  }
}

export function requireString(value: string | undefined, flag: string): string {
  if (value === undefined || value === "") throw new FerryError("E_BAD_ARGUMENT", `${flag} is required`);
  return value;
}

export function positiveSeconds(value: string, flag: string): number {
  const seconds = Number(value);
  if (!(seconds > 0)) throw new FerryError("E_BAD_ARGUMENT", `${flag} expects a positive number of seconds, got ${JSON.stringify(value)}`);
  return seconds;
}
