import { createRequire } from "node:module";
import type { ErrorObject } from "ajv";
import { FerryError, assertHostName, assertTransportAllowed, parsePublicKeys, readTextFile } from "@ferry/core";
import { describeCheckProblems, staticCheckProblems } from "./check-validation.js";
import { parseCronSchedule } from "./cron-schedule.js";
import { CONTROLLER_KEYS, type AgentConfig, type ConnectedAgentConfig } from "./config-schema.js";
import { validate as validateGenerated } from "./gen/config-validator.js";

export {
  AGENT_CONFIG_SCHEMA,
  CONTROLLER_KEYS,
  UNSIGNED_MODES,
  type AgentConfig,
  type CommandCheck,
  type ConnectedAgentConfig,
  type HealthCheck,
  type HttpCheck,
  type Strategy,
  type SystemdCheck,
  type UnsignedMode,
} from "./config-schema.js";

/** The validator generated from AGENT_CONFIG_SCHEMA: fills in defaults, and lists every problem in `errors`. */
const validate = validateGenerated as { (data: unknown): data is AgentConfig; errors?: ErrorObject[] | null };

/** The controller URLs, whichever key names them; empty on a standalone host. */
export function controllerUrlsOf(config: Pick<AgentConfig, "controllerUrl" | "controllerUrls">): string[] {
  if (config.controllerUrls !== undefined) return [...config.controllerUrls];
  return config.controllerUrl === undefined ? [] : [config.controllerUrl];
}

/**
 * Narrows a configuration to one with a controller, or throws E_BAD_CONFIG
 * naming every missing key, so that `ferry agent` on a standalone host's file
 * says what it lacks instead of failing on a connection.
 */
export function requireControllerSettings(config: AgentConfig): ConnectedAgentConfig {
  const missing = CONTROLLER_KEYS.filter((key) => (key === "controllerUrl" ? controllerUrlsOf(config).length === 0 : config[key] === undefined));
  if (missing.length === 0) return config as ConnectedAgentConfig;
  throw new FerryError(
    "E_BAD_CONFIG",
    `invalid agent configuration: missing ${missing.map((key) => JSON.stringify(key)).join(", ")}: \`ferry agent\` connects to a controller and needs controllerUrl (or controllerUrls), tokenFile, substituters (a host without a controller only runs \`ferry agent apply-bundle\`, which does without them)`,
  );
}

function describe(error: ErrorObject): string {
  const where = error.instancePath ? error.instancePath.slice(1).replaceAll("/", ".") : "(top level)";
  if (error.keyword === "additionalProperties") {
    return `unknown key ${JSON.stringify((error.params as { additionalProperty: string }).additionalProperty)} in ${where}`;
  }
  if (error.keyword === "required") return `missing key ${JSON.stringify((error.params as { missingProperty: string }).missingProperty)} in ${where}`;
  return `${where}: ${error.message ?? error.keyword}`;
}

/** Validates a parsed config (defaults filled in), or throws E_BAD_CONFIG naming each bad key. */
export function parseAgentConfig(raw: unknown): AgentConfig {
  const copy = structuredClone(raw);
  if (!validate(copy)) {
    const errors = (validate.errors ?? []).filter((error) => (error.keyword !== "oneOf" && error.keyword !== "const") || (validate.errors ?? []).length === 1);
    throw new FerryError("E_BAD_CONFIG", `invalid agent configuration: ${[...new Set(errors.map(describe))].join("; ")}`);
  }
  // null is how a generator (the NixOS module, JSON tools) writes "not set".
  for (const key of [...CONTROLLER_KEYS, "controllerUrls"] as const) if (copy[key] === null) delete copy[key];
  if (copy.controllerUrl !== undefined && copy.controllerUrls !== undefined) {
    throw new FerryError(
      "E_BAD_CONFIG",
      "invalid agent configuration: controllerUrl and controllerUrls are both set: keep one (controllerUrls for several controller replicas)",
    );
  }
  copy.hostName = assertHostName(copy.hostName);
  const problems = staticCheckProblems(copy.healthChecks);
  if (problems.length > 0) throw new FerryError("E_BAD_CONFIG", `invalid agent configuration: ${describeCheckProblems(problems)}`);
  if (Boolean(copy.tlsCertFile) !== Boolean(copy.tlsKeyFile)) {
    throw new FerryError("E_BAD_CONFIG", "invalid agent configuration: tlsCertFile and tlsKeyFile go together: set both or neither");
  }
  const allowed = copy.allowInsecureTransport;
  if (copy.controllerUrl !== undefined) assertTransportAllowed(copy.controllerUrl, allowed, "controllerUrl", "set allowInsecureTransport = true");
  copy.controllerUrls?.forEach((url, index) => assertTransportAllowed(url, allowed, `controllerUrls[${index}]`, "set allowInsecureTransport = true"));
  for (const url of copy.substituters ?? []) assertTransportAllowed(url, allowed, "substituter", "set allowInsecureTransport = true");
  try {
    parsePublicKeys(copy.intentPublicKeys);
  } catch (error) {
    throw new FerryError("E_BAD_CONFIG", `invalid agent configuration: intentPublicKeys: ${(error as Error).message}`);
  }
  if (copy.requireSignedIntents && copy.intentPublicKeys.length === 0) {
    throw new FerryError("E_BAD_CONFIG", "invalid agent configuration: requireSignedIntents needs at least one key in intentPublicKeys");
  }
  if (copy.gcSchedule && !isCronExpression(copy.gcSchedule)) {
    throw new FerryError(
      "E_BAD_CONFIG",
      `invalid agent configuration: gcSchedule ${JSON.stringify(copy.gcSchedule)} is not a cron expression (e.g. "30 3 * * *")`,
    );
  }
  return copy;
}

/** An expression the agent reads itself, or one node-cron accepts (loaded only for those). */
function isCronExpression(expression: string): boolean {
  if (parseCronSchedule(expression)) return true;
  const cron = createRequire(import.meta.url)("node-cron") as { validate(expression: string): boolean };
  return cron.validate(expression);
}

export function loadAgentConfig(file: string, overrides: Partial<AgentConfig> = {}): AgentConfig {
  const text = readTextFile(file, "agent configuration");
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new FerryError("E_BAD_CONFIG", `${file} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new FerryError("E_BAD_CONFIG", `${file} must hold a JSON object`);
  return parseAgentConfig({ ...raw, ...overrides });
}
