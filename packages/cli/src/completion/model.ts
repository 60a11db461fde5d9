import { GROUPS, allVerbs, childrenOf } from "../spec/index.js";
import type { ValueCompletion, VerbSpec } from "../spec/types.js";

/**
 * What every shell's completion needs, derived from the verb table: for each
 * verb path its sub-verbs, its flags and how their values and the verb's
 * arguments are completed. The three generators only change the syntax.
 */

/** How a value is completed; "text" means free text (nothing to offer). */
export type ValueKind = { kind: ValueCompletion } | { kind: "choices"; words: readonly string[] } | { kind: "text" };

export interface FlagEntry {
  long: string;
  short?: string;
  description: string;
  /** Absent for a boolean flag, which takes no value. */
  value?: ValueKind;
}

export interface CompletionNode {
  /** "" for the top level, else the verb's words joined by spaces. */
  key: string;
  children: { word: string; description: string }[];
  flags: FlagEntry[];
  positional?: ValueKind;
}

const HELP_FLAG: FlagEntry = { long: "--help", short: "-h", description: "print this verb's help" };

function valueKind(spec: { complete?: ValueCompletion; choices?: readonly string[] }): ValueKind {
  if (spec.choices) return { kind: "choices", words: spec.choices };
  if (spec.complete) return { kind: spec.complete };
  return { kind: "text" };
}

function describeChild(path: readonly string[]): string {
  const spec = allVerbs().find((verb) => verb.path.join(" ") === path.join(" "));
  return spec?.summary ?? GROUPS[path.join(" ")] ?? "";
}

function flagEntries(spec: VerbSpec | undefined): FlagEntry[] {
  if (!spec) return [];
  const flags = Object.entries(spec.flags).map(([name, flag]): FlagEntry => {
    const entry: FlagEntry = { long: `--${name}`, description: flag.description };
    if (flag.short) entry.short = `-${flag.short}`;
    if (flag.type === "string") entry.value = valueKind(flag);
    return entry;
  });
  return [...flags, HELP_FLAG];
}

export function completionNodes(): CompletionNode[] {
  const paths = new Map<string, readonly string[]>([["", []]]);
  for (const spec of allVerbs()) {
    for (let length = 1; length <= spec.path.length; length++) paths.set(spec.path.slice(0, length).join(" "), spec.path.slice(0, length));
  }
  return [...paths].map(([key, path]) => {
    const spec = allVerbs().find((verb) => verb.path.join(" ") === key);
    const node: CompletionNode = {
      key,
      children: childrenOf(path).map((word) => ({ word, description: describeChild([...path, word]) })),
      flags: key === "" ? [HELP_FLAG, { long: "--version", description: "print Ferry's version" }] : flagEntries(spec),
    };
    if (spec?.positionals && (spec.positionals.complete || spec.positionals.choices)) node.positional = valueKind(spec.positionals);
    return node;
  });
}

/** The pipeline every script uses to list context names: `ferry context list --json`, one "name" per context. */
export const CONTEXT_NAMES_COMMAND = `ferry context list --json 2>/dev/null | sed -n 's/^ *"name": "\\(.*\\)",*$/\\1/p'`;
