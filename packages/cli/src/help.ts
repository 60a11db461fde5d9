import { ENV } from "./spec/env.js";
import { GROUPS, SECTIONS, allVerbs, childrenOf, verbName } from "./spec/index.js";
import type { FlagSpec, Section, VerbSpec } from "./spec/types.js";

/** Help text is printed from the table alone, so it can never list a flag the parser does not take, or miss one. */

const HELP_FLAG_LINE: [string, string] = ["-h, --help", "print this help"];

export function helpWidth(): number {
  const columns = process.stdout.isTTY ? process.stdout.columns : undefined;
  return Math.min(120, Math.max(60, columns ?? 100));
}

/** Lays out [term, text] rows in two columns, wrapping the text under itself. */
function columns(rows: readonly (readonly [string, string])[], width: number, indent = 2): string {
  const termWidth = Math.min(34, Math.max(...rows.map(([term]) => term.length)));
  const textWidth = width - indent - termWidth - 2;
  const lines: string[] = [];
  if (textWidth < 30) {
    // Too narrow for two columns (a 60-column terminal and long flag names): each text under its term.
    const pad = " ".repeat(indent + 4);
    for (const [term, text] of rows) lines.push(`${" ".repeat(indent)}${term}`, ...wrap(text, width - pad.length).map((line) => pad + line));
    return lines.join("\n");
  }
  for (const [term, text] of rows) {
    const wrapped = wrap(text, textWidth);
    const pad = " ".repeat(indent + termWidth + 2);
    if (term.length > termWidth) {
      lines.push(`${" ".repeat(indent)}${term}`);
      lines.push(...wrapped.map((line) => pad + line));
    } else {
      lines.push(`${" ".repeat(indent)}${term.padEnd(termWidth)}  ${wrapped[0] ?? ""}`.trimEnd());
      lines.push(...wrapped.slice(1).map((line) => pad + line));
    }
  }
  return lines.join("\n");
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  if (line !== "") lines.push(line);
  return lines;
}

/** Few choices are the placeholder itself: --mode switch|boot|test. */
function placeholder(flag: FlagSpec): string {
  return flag.choices && flag.choices.length <= 4 ? flag.choices.join("|") : (flag.value ?? "VALUE");
}

export function flagTerm(name: string, flag: FlagSpec): string {
  const long = `--${name}${flag.type === "string" ? ` ${placeholder(flag)}` : ""}`;
  return flag.short ? `-${flag.short}, ${long}` : long;
}

/** The flag's description with its accepted values and its default. */
export function flagText(flag: FlagSpec): string {
  const parts = [flag.description];
  if (flag.choices && flag.choices.length > 4) parts.push(`one of ${flag.choices.join(", ")}`);
  if (flag.required) parts.push("required");
  const fallback =
    flag.defaultText ??
    (flag.default === undefined || flag.type === "boolean" || flag.multiple ? undefined : JSON.stringify(flag.default).replace(/^"(.+)"$/, "$1"));
  const text = parts.join("; ");
  return fallback === undefined || fallback === '""' ? text : `${text} (default: ${fallback})`;
}

/** `ferry keys generate --name NAME --out DIR`: the verb, its arguments and its required flags. */
export function usageLine(spec: VerbSpec): string {
  const required = Object.entries(spec.flags)
    .filter(([, flag]) => flag.required)
    .map(([name, flag]) => ` ${flag.short ? `-${flag.short}` : `--${name}`} ${placeholder(flag)}`);
  return `ferry ${verbName(spec)}${spec.positionals ? ` ${spec.positionals.synopsis}` : ""}${required.join("")}`;
}

export function verbHelp(spec: VerbSpec, width = helpWidth()): string {
  const flagRows = Object.entries(spec.flags).map(([name, flag]) => [flagTerm(name, flag), flagText(flag)] as const);
  const parts = [
    // Continuation lines are indented by two, so they wrap two columns earlier.
    wrap(`ferry ${verbName(spec)} — ${spec.summary}`, width - 2).join("\n  "),
    `Usage:\n  ${usageLine(spec)}${flagRows.length > 0 ? " [FLAGS]" : ""}`,
    `Flags:\n${columns([...flagRows, HELP_FLAG_LINE], width)}`,
  ];
  if (spec.env.length > 0)
    parts.push(
      `Environment:\n${columns(
        spec.env.map((name) => [name, ENV[name]] as const),
        width,
      )}`,
    );
  parts.push(`Example:\n  ${spec.example}`);
  if (spec.notes) parts.push(wrap(spec.notes, width).join("\n"));
  const children = childrenOf(spec.path);
  if (children.length > 0) parts.push(`Verbs under ferry ${verbName(spec)}:\n${memberRows(spec.path, width)}`);
  return `${parts.join("\n\n")}\n`;
}

function memberRows(prefix: readonly string[], width: number): string {
  const members = allVerbs().filter((spec) => spec.path.length > prefix.length && prefix.every((word, i) => spec.path[i] === word));
  return columns(
    members.map((spec) => [usageLine(spec), spec.summary] as const),
    width,
  );
}

export function groupHelp(path: readonly string[], width = helpWidth()): string {
  const name = path.join(" ");
  return `ferry ${name} — ${GROUPS[name] ?? ""}\n\n${memberRows(path, width)}\n\nferry help ${name} VERB (or ferry ${name} VERB --help) prints a verb's flags, defaults and environment.\n`;
}

export function overview(width = helpWidth()): string {
  const sections = (Object.keys(SECTIONS) as Section[]).map((section) => {
    const rows = allVerbs()
      .filter((spec) => spec.section === section)
      .map((spec) => [usageLine(spec).slice("ferry ".length), spec.summary] as const);
    return `${SECTIONS[section]}:\n${columns(rows, width)}`;
  });
  return (
    [
      "ferry — pull-based deployments for NixOS fleets",
      "Usage: ferry VERB [ARGUMENTS] [FLAGS]\n       ferry help VERB, or ferry VERB --help: the verb's flags, their defaults, its environment and an example",
      ...sections,
      wrap(
        "Every verb takes --json. Operator verbs find the controller from --controller and --token-file, else FERRY_CONTROLLER and FERRY_TOKEN_FILE, else the context " +
          "(--context, FERRY_CONTEXT or the current one) of $XDG_CONFIG_HOME/ferry/config.json. Errors print a stable code (E_...) and a one-line hint; " +
          "exit status 1, or 2 for usage errors.",
        width,
      ).join("\n"),
    ].join("\n\n") + "\n"
  );
}

/** The table entry as data, for `ferry help VERB --json`. */
export function verbJson(spec: VerbSpec): Record<string, unknown> {
  return {
    verb: verbName(spec),
    usage: usageLine(spec),
    summary: spec.summary,
    positionals: spec.positionals ?? null,
    flags: Object.entries(spec.flags).map(([name, flag]) => ({ name: `--${name}`, ...flag })),
    env: spec.env.map((name) => ({ name, description: ENV[name] })),
    example: spec.example,
    ...(spec.notes ? { notes: spec.notes } : {}),
  };
}
