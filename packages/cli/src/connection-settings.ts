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
  /** TLS: the CA the controller's certificate must chain to, and a client certificate for mTLS. */
  ca?: Setting;
  clientCert?: Setting;
  clientKey?: Setting;
  /** Plaintext to a non-loopback controller was asked for (--insecure / FERRY_INSECURE=1). */
  insecure: boolean;
  context?: Setting;
  configFile: string;
}

export interface ConnectionFlags {
  controller?: string | undefined;
  "token-file"?: string | undefined;
  context?: string | undefined;
  ca?: string | undefined;
  "client-cert"?: string | undefined;
  "client-key"?: string | undefined;
  insecure?: boolean | undefined;
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
  const settings: ConnectionSettings = { configFile: file, insecure: flags.insecure === true || readEnv("FERRY_INSECURE") === "1" };
  const controller = pick(flags.controller, "--controller", readEnv("FERRY_CONTROLLER"), "FERRY_CONTROLLER");
  const tokenFile = pick(flags["token-file"], "--token-file", readEnv("FERRY_TOKEN_FILE"), "FERRY_TOKEN_FILE");
  const chosen = pick(flags.context, "--context", readEnv("FERRY_CONTEXT"), "FERRY_CONTEXT");
  if (controller) settings.controller = controller;
  if (tokenFile) settings.tokenFile = tokenFile;
  const ca = pick(flags.ca, "--ca", readEnv("FERRY_CA_FILE"), "FERRY_CA_FILE");
  const clientCert = pick(flags["client-cert"], "--client-cert", readEnv("FERRY_CLIENT_CERT"), "FERRY_CLIENT_CERT");
  const clientKey = pick(flags["client-key"], "--client-key", readEnv("FERRY_CLIENT_KEY"), "FERRY_CLIENT_KEY");
  if (ca) settings.ca = ca;
  if (clientCert) settings.clientCert = clientCert;
  if (clientKey) settings.clientKey = clientKey;
  if (!chosen && controller && tokenFile && !options.readContext) return settings;
  const config = readCliConfig(file);
  const context = chosen ?? (config.currentContext === undefined ? undefined : { value: config.currentContext, from: "currentContext" });
  if (!context) return settings;
  settings.context = context;
  const named = contextNamed(config, context.value, file, `from ${context.from}`);
  const from = `context ${JSON.stringify(context.value)}`;
  if (!settings.controller && named.controller) settings.controller = { value: named.controller, from };
  if (!settings.tokenFile && named.tokenFile) settings.tokenFile = { value: named.tokenFile, from };
  if (!settings.ca && named.caFile) settings.ca = { value: named.caFile, from };
  if (!settings.clientCert && named.clientCert) settings.clientCert = { value: named.clientCert, from };
  if (!settings.clientKey && named.clientKey) settings.clientKey = { value: named.clientKey, from };
  return settings;
}
