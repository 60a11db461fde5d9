import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { FerryError, fileError, writeFileAtomic } from "@ferry/core";
import { readEnv } from "./spec/env.js";

/**
 * The CLI configuration file: named contexts, each a controller address and
 * an operator token file, and the current one, like kubectl's contexts.
 *
 *   {"currentContext": "production",
 *    "contexts": {"production": {"controller": "ferry.example.net:7071", "tokenFile": "/home/me/.config/ferry/production.token"}}}
 *
 * A relative tokenFile is read from the file's own directory, so a
 * configuration written by hand does not depend on the current directory;
 * `ferry context set` always stores absolute paths.
 */

export interface ContextSettings {
  controller?: string;
  tokenFile?: string;
  caFile?: string;
  clientCert?: string;
  clientKey?: string;
}

export interface CliConfig {
  currentContext?: string;
  contexts: Record<string, ContextSettings>;
}

const CONTEXT_KEYS: Record<keyof ContextSettings, true> = { controller: true, tokenFile: true, caFile: true, clientCert: true, clientKey: true };
const CONTEXT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export function configFile(): string {
  return join(readEnv("XDG_CONFIG_HOME") ?? join(homedir(), ".config"), "ferry", "config.json");
}

export function assertContextName(name: string): string {
  if (!CONTEXT_NAME.test(name))
    throw new FerryError("E_BAD_ARGUMENT", `context name ${JSON.stringify(name)} may hold only letters, digits, '.', '_' and '-' (at most 63)`);
  return name;
}

/** The configuration; an absent file is an empty configuration, a malformed one is E_BAD_CONFIG naming the file. */
export function readCliConfig(file = configFile()): CliConfig {
  if (!existsSync(file)) return { contexts: {} };
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw fileError(error, file, "CLI configuration");
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new FerryError("E_BAD_CONFIG", `${file} is not valid JSON: ${(error as Error).message}`);
  }
  return validate(raw, file);
}

function validate(raw: unknown, file: string): CliConfig {
  const bad = (what: string) => new FerryError("E_BAD_CONFIG", `${file}: ${what}`);
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw bad('expected an object such as {"contexts": {}}');
  const { currentContext, contexts = {}, ...rest } = raw as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) throw bad(`unknown key ${JSON.stringify(unknown[0])} (known: currentContext, contexts)`);
  if (currentContext !== undefined && typeof currentContext !== "string") throw bad("currentContext must be a string");
  if (typeof contexts !== "object" || contexts === null || Array.isArray(contexts)) throw bad("contexts must be an object of named contexts");
  const config: CliConfig = { contexts: {} };
  for (const [name, value] of Object.entries(contexts)) {
    if (!CONTEXT_NAME.test(name)) throw bad(`context name ${JSON.stringify(name)} may hold only letters, digits, '.', '_' and '-'`);
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw bad(`contexts.${name} must be an object`);
    const settings: ContextSettings = {};
    for (const [key, setting] of Object.entries(value)) {
      if (!(key in CONTEXT_KEYS)) throw bad(`contexts.${name}: unknown key ${JSON.stringify(key)} (known: ${Object.keys(CONTEXT_KEYS).join(", ")})`);
      if (typeof setting !== "string" || setting === "") throw bad(`contexts.${name}.${key} must be a non-empty string`);
      settings[key as keyof ContextSettings] = setting;
    }
    for (const key of ["tokenFile", "caFile", "clientCert", "clientKey"] as const) {
      const path = settings[key];
      if (path !== undefined && !isAbsolute(path)) settings[key] = resolve(dirname(file), path);
    }
    config.contexts[name] = settings;
  }
  if (currentContext !== undefined) config.currentContext = currentContext;
  return config;
}

export function writeCliConfig(config: CliConfig, file = configFile()): void {
  const ordered = { ...(config.currentContext === undefined ? {} : { currentContext: config.currentContext }), contexts: config.contexts };
  writeFileAtomic(file, `${JSON.stringify(ordered, null, 2)}\n`, 0o600);
}

/** A context by name, or E_UNKNOWN_CONTEXT listing the known ones. */
export function contextNamed(config: CliConfig, name: string, file: string, origin: string): ContextSettings {
  const context = config.contexts[name];
  if (context) return context;
  const known = Object.keys(config.contexts);
  throw new FerryError(
    "E_UNKNOWN_CONTEXT",
    `no context ${JSON.stringify(name)} (${origin}) in ${file}; ${known.length > 0 ? `known: ${known.join(", ")}` : "it defines none"}`,
  );
}
