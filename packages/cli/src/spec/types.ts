import type { EnvName } from "./env.js";

/**
 * The shape of the one table that describes the CLI: each verb's flags are
 * parsed from it, its help is printed from it and the shell completions are
 * generated from it. A flag exists only if it is written here.
 */
export interface FlagSpec {
  readonly type: "string" | "boolean";
  readonly multiple?: boolean;
  readonly short?: string;
  /** The verb refuses to run without it; the usage line shows it. */
  readonly required?: true;
  /** What the command sees when the flag is absent (parseArgs' default). */
  readonly default?: string | boolean | readonly string[];
  /** For help only: a fallback the command or the controller applies, when there is no fixed `default`. */
  readonly defaultText?: string;
  /** The placeholder help shows for the value: SECONDS, FILE, HOST:PORT. */
  readonly value?: string;
  /** The only values accepted; checked when parsing and offered by completion. */
  readonly choices?: readonly string[];
  /** What a shell completes the value with. */
  readonly complete?: ValueCompletion;
  readonly description: string;
}

export type ValueCompletion = "file" | "directory" | "context";

export interface PositionalSpec {
  /** As shown in the usage line: HOST=STOREPATH..., FILE, [HOST]... */
  readonly synopsis: string;
  readonly min: number;
  /** Absent: any number. */
  readonly max?: number;
  readonly complete?: ValueCompletion;
  readonly choices?: readonly string[];
}

export type Section = "operator" | "local" | "cli";

export interface VerbSpec {
  /** The words that name the verb: ["rollout", "start"]. */
  readonly path: readonly string[];
  readonly summary: string;
  readonly section: Section;
  /** Absent: the verb takes no positional arguments. */
  readonly positionals?: PositionalSpec;
  readonly flags: Readonly<Record<string, FlagSpec>>;
  /** The environment variables the verb reads, described once in env.ts. */
  readonly env: readonly EnvName[];
  readonly example: string;
  /** A paragraph printed after the flags, for what does not fit a flag's line. */
  readonly notes?: string;
}

type FlagValue<F extends FlagSpec> = F extends { readonly type: "boolean" }
  ? F extends { readonly multiple: true }
    ? boolean[]
    : boolean
  : F extends { readonly multiple: true }
    ? string[]
    : string;

/** The values parseVerb returns for a verb's flags: a flag with a default, or a required one, is always set. */
export type FlagValues<Flags extends Readonly<Record<string, FlagSpec>>> = {
  -readonly [K in keyof Flags]: Flags[K] extends { readonly default: unknown } | { readonly required: true }
    ? FlagValue<Flags[K]>
    : FlagValue<Flags[K]> | undefined;
};
