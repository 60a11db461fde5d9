import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { FerryError, parseHostPort } from "@ferry/core";
import { parseVerb } from "../args.js";
import { assertContextName, configFile, contextNamed, readCliConfig, writeCliConfig, type ContextSettings } from "../cli-config.js";
import { resolveConnectionSettings, type Setting } from "../connection-settings.js";
import { createOutput, table } from "../output.js";
import { VERBS } from "../spec/index.js";

export async function contextCommand(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  switch (verb) {
    case "list":
      return list(rest);
    case "use":
      return use(rest);
    case "show":
      return show(rest);
    case "set":
      return set(rest);
    case "remove":
      return remove(rest);
    default:
      throw new FerryError("E_BAD_ARGUMENT", `unknown verb 'context ${verb ?? ""}': use list, use, show, set or remove`);
  }
}

function contextJson(name: string, context: ContextSettings, current: string | undefined): Record<string, unknown> {
  return { name, current: name === current, controller: context.controller ?? null, tokenFile: context.tokenFile ?? null };
}

async function list(args: string[]): Promise<number> {
  const { values } = parseVerb(VERBS["context list"], args);
  const file = configFile();
  const config = readCliConfig(file);
  const contexts = Object.entries(config.contexts);
  createOutput(values.json).result(
    { file, currentContext: config.currentContext ?? null, contexts: contexts.map(([name, context]) => contextJson(name, context, config.currentContext)) },
    () =>
      contexts.length === 0
        ? `no contexts in ${file}; make one with: ferry context set NAME --controller HOST:PORT --token-file FILE\n`
        : table(
            ["CURRENT", "NAME", "CONTROLLER", "TOKEN FILE"],
            contexts.map(([name, context]) => [name === config.currentContext ? "*" : "", name, context.controller ?? "-", context.tokenFile ?? "-"]),
          ),
  );
  return 0;
}

async function use(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS["context use"], args);
  const name = positionals[0] as string;
  const file = configFile();
  const config = readCliConfig(file);
  contextNamed(config, name, file, "given to ferry context use");
  config.currentContext = name;
  writeCliConfig(config, file);
  createOutput(values.json).result({ file, currentContext: name }, () => `current context: ${name}\n`);
  return 0;
}

function describe(setting: Setting | undefined): string {
  return setting ? `${setting.value} (from ${setting.from})` : "-";
}

async function show(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS["context show"], args);
  const out = createOutput(values.json);
  const name = positionals[0];
  if (name !== undefined) {
    const file = configFile();
    const config = readCliConfig(file);
    const context = contextNamed(config, name, file, "given to ferry context show");
    out.result({ file, ...contextJson(name, context, config.currentContext) }, () =>
      table(
        ["SETTING", "VALUE"],
        [
          ["context", `${name}${name === config.currentContext ? " (current)" : ""}`],
          ["controller", context.controller ?? "-"],
          ["token file", context.tokenFile ?? "-"],
        ],
      ),
    );
    return 0;
  }
  // Without a name: what an operator verb would use right now, with no flags given.
  const settings = resolveConnectionSettings({}, { readContext: true });
  const json = (setting: Setting | undefined) => (setting ? { value: setting.value, from: setting.from } : null);
  out.result({ file: settings.configFile, context: json(settings.context), controller: json(settings.controller), tokenFile: json(settings.tokenFile) }, () =>
    table(
      ["SETTING", "VALUE"],
      [
        ["context", describe(settings.context)],
        ["controller", describe(settings.controller)],
        ["token file", describe(settings.tokenFile)],
        ["file", settings.configFile],
      ],
    ),
  );
  return 0;
}

/** Stored absolute, so the context works from any directory. */
function absolutePath(path: string): string {
  return path === "~" || path.startsWith("~/") ? join(homedir(), path.slice(1)) : resolve(path);
}

async function set(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS["context set"], args);
  const name = assertContextName(positionals[0] as string);
  if (values.controller === undefined && values["token-file"] === undefined)
    throw new FerryError("E_BAD_ARGUMENT", "give --controller HOST:PORT, --token-file FILE or both");
  const change: ContextSettings = {};
  if (values.controller !== undefined) {
    parseHostPort(values.controller, "--controller");
    change.controller = values.controller;
  }
  if (values["token-file"] !== undefined) change.tokenFile = absolutePath(values["token-file"]);
  const file = configFile();
  const config = readCliConfig(file);
  const created = config.contexts[name] === undefined;
  const context = { ...config.contexts[name], ...change };
  config.contexts[name] = context;
  const becameCurrent = config.currentContext === undefined;
  if (becameCurrent) config.currentContext = name;
  writeCliConfig(config, file);
  createOutput(values.json).result({ file, created, ...contextJson(name, context, config.currentContext) }, () =>
    [
      `${created ? "created" : "updated"} context ${name} in ${file}${becameCurrent ? "; it is the current context" : ""}`,
      ...(context.controller === undefined ? ["it has no controller yet: add one with --controller HOST:PORT"] : []),
      ...(context.tokenFile === undefined ? ["it has no token file yet: add one with --token-file FILE"] : []),
    ].join("\n"),
  );
  return 0;
}

async function remove(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS["context remove"], args);
  const name = positionals[0] as string;
  const file = configFile();
  const config = readCliConfig(file);
  contextNamed(config, name, file, "given to ferry context remove");
  delete config.contexts[name];
  const wasCurrent = config.currentContext === name;
  if (wasCurrent) delete config.currentContext;
  writeCliConfig(config, file);
  createOutput(values.json).result({ file, removed: name, currentContext: config.currentContext ?? null }, () =>
    wasCurrent ? `removed context ${name}; no context is current now (ferry context use NAME)\n` : `removed context ${name}\n`,
  );
  return 0;
}
