import { configFile, contextNamed, readCliConfig } from "./cli-config.js";
import { readEnv } from "./spec/env.js";

/** A setting and where it came from, so errors and `ferry context show` can say which one won. */
export interface Setting {
  value: string;
  from: string;
}

export interface ConnectionSettings {
  controller?: Setting;
  tokenFile?: Setting;
  context?: Setting;
  configFile: string;
}

export interface ConnectionFlags {
  controller?: string | undefined;
  "token-file"?: string | undefined;
  context?: string | undefined;
}

function pick(flag: string | undefined, flagName: string, env: string | undefined, envName: string): Setting | undefined {
  if (flag !== undefined && flag !== "") return { value: flag, from: flagName };
  if (env !== undefined) return { value: env, from: envName };
  return undefined;
}

/**
 * Where operator verbs find the controller, for each setting on its own:
 * the flag, else its environment variable, else the context (--context, else
 * FERRY_CONTEXT, else the configuration's current context). The file is read
 * only when a context is asked for or a setting is still missing.
 */
export function resolveConnectionSettings(flags: ConnectionFlags, options: { readContext?: boolean } = {}): ConnectionSettings {
  const file = configFile();
  const settings: ConnectionSettings = { configFile: file };
  const controller = pick(flags.controller, "--controller", readEnv("FERRY_CONTROLLER"), "FERRY_CONTROLLER");
  const tokenFile = pick(flags["token-file"], "--token-file", readEnv("FERRY_TOKEN_FILE"), "FERRY_TOKEN_FILE");
  const chosen = pick(flags.context, "--context", readEnv("FERRY_CONTEXT"), "FERRY_CONTEXT");
  if (controller) settings.controller = controller;
  if (tokenFile) settings.tokenFile = tokenFile;
  if (!chosen && controller && tokenFile && !options.readContext) return settings;
  const config = readCliConfig(file);
  const context = chosen ?? (config.currentContext === undefined ? undefined : { value: config.currentContext, from: "currentContext" });
  if (!context) return settings;
  settings.context = context;
  const named = contextNamed(config, context.value, file, `from ${context.from}`);
  const from = `context ${JSON.stringify(context.value)}`;
  if (!settings.controller && named.controller) settings.controller = { value: named.controller, from };
  if (!settings.tokenFile && named.tokenFile) settings.tokenFile = { value: named.tokenFile, from };
  return settings;
}
