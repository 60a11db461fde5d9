import { INTENT_SHOW, INTENT_SIGN } from "./intent.js";
import { AUDIT, HOST_ROTATE_TOKEN, TOKEN_CREATE, TOKEN_LIST, TOKEN_REVOKE, TOKEN_ROTATE } from "./access.js";
import { BUNDLE_CREATE, BUNDLE_IMPORT, BUNDLE_INSPECT, BUNDLE_SIGN_CACHE, BUNDLE_VERIFY, SITE_INVENTORY } from "./bundle.js";
import { COMPLETION, CONTEXT_LIST, CONTEXT_REMOVE, CONTEXT_SET, CONTEXT_SHOW, CONTEXT_USE, HELP, VERSION } from "./cli.js";
import { CACHE_GC, CACHE_PUSH, CACHE_RM, DEPLOY, DRY_ACTIVATE } from "./deploy.js";
import { HOST_ADD, HOST_LIST, HOST_REMOVE, STATUS } from "./hosts.js";
import { HISTORY, LOGS, ROLLBACK } from "./history.js";
import { AGENT, AGENT_APPLY_BUNDLE, AGENT_CHECK_CONFIG, AGENT_GC, AGENT_SCHEMA, CONTROLLER, DEV_HOST, KEYS_GENERATE } from "./local.js";
import { ROLLOUT_ABORT, ROLLOUT_LIST, ROLLOUT_PAUSE, ROLLOUT_PROMOTE, ROLLOUT_RESUME, ROLLOUT_START, ROLLOUT_STATUS } from "./rollout.js";
import type { Section, VerbSpec } from "./types.js";
import { WINDOW_ADD, WINDOW_LIST, WINDOW_REMOVE } from "./window.js";

/** The table: every verb of the CLI, keyed by its words. Order is the order of the overview. */
export const VERBS = {
  "host add": HOST_ADD,
  "host list": HOST_LIST,
  "host remove": HOST_REMOVE,
  "host rotate-token": HOST_ROTATE_TOKEN,
  "cache push": CACHE_PUSH,
  "cache rm": CACHE_RM,
  "cache gc": CACHE_GC,
  deploy: DEPLOY,
  status: STATUS,
  "dry-activate": DRY_ACTIVATE,
  history: HISTORY,
  rollback: ROLLBACK,
  logs: LOGS,
  "rollout start": ROLLOUT_START,
  "rollout status": ROLLOUT_STATUS,
  "rollout list": ROLLOUT_LIST,
  "rollout pause": ROLLOUT_PAUSE,
  "rollout resume": ROLLOUT_RESUME,
  "rollout abort": ROLLOUT_ABORT,
  "rollout promote": ROLLOUT_PROMOTE,
  "window add": WINDOW_ADD,
  "window list": WINDOW_LIST,
  "window remove": WINDOW_REMOVE,
  "bundle import": BUNDLE_IMPORT,
  "site inventory": SITE_INVENTORY,
  "token create": TOKEN_CREATE,
  "token list": TOKEN_LIST,
  "token revoke": TOKEN_REVOKE,
  "token rotate": TOKEN_ROTATE,
  audit: AUDIT,
  "intent sign": INTENT_SIGN,
  "intent show": INTENT_SHOW,
  "keys generate": KEYS_GENERATE,
  controller: CONTROLLER,
  agent: AGENT,
  "agent schema": AGENT_SCHEMA,
  "agent check-config": AGENT_CHECK_CONFIG,
  "agent gc": AGENT_GC,
  "agent apply-bundle": AGENT_APPLY_BUNDLE,
  "dev host": DEV_HOST,
  "bundle create": BUNDLE_CREATE,
  "bundle verify": BUNDLE_VERIFY,
  "bundle inspect": BUNDLE_INSPECT,
  "bundle sign-cache": BUNDLE_SIGN_CACHE,
  "context list": CONTEXT_LIST,
  "context use": CONTEXT_USE,
  "context show": CONTEXT_SHOW,
  "context set": CONTEXT_SET,
  "context remove": CONTEXT_REMOVE,
  completion: COMPLETION,
  help: HELP,
  version: VERSION,
} as const satisfies Record<string, VerbSpec>;

export type VerbId = keyof typeof VERBS;

/** Verbs that only group others: `ferry rollout --help` lists its members. */
export const GROUPS: Readonly<Record<string, string>> = {
  intent: "signed deploy intents: what a host runs only if a trusted key approved it",
  token: "named operator tokens with scopes",
  dev: "try Ferry on one machine",
  host: "register, list and remove hosts",
  cache: "fill the controller's binary cache, and empty it of what no host needs",
  rollout: "roll systems out over many hosts in waves, and steer rollouts",
  window: "maintenance windows: when rollouts may switch hosts",
  bundle: "signed single-file bundles for air-gapped sites",
  site: "the view of an air-gapped site's controller",
  keys: "signing keys",
  agent: "the agent that runs on each host, and its local tools",
  context: "named controller settings in the CLI configuration file",
};

export const SECTIONS: Readonly<Record<Section, string>> = {
  operator: "Operator verbs: they reach the controller (--controller, --token-file or a context)",
  local: "Local verbs",
  cli: "The CLI itself",
};

export function allVerbs(): VerbSpec[] {
  return Object.values(VERBS);
}

export function verbName(spec: VerbSpec): string {
  return spec.path.join(" ");
}

/** The verbs one level under `prefix` (the top level for []), with group names standing for their members. */
export function childrenOf(prefix: readonly string[]): string[] {
  const names = new Set<string>();
  for (const spec of allVerbs()) {
    if (spec.path.length > prefix.length && prefix.every((word, i) => spec.path[i] === word)) names.add(spec.path[prefix.length] as string);
  }
  return [...names];
}

export type Resolved =
  { kind: "verb"; spec: VerbSpec; rest: string[] } | { kind: "group"; path: string[]; rest: string[] } | { kind: "unknown"; path: string[]; word: string };

/** Finds the verb the leading words of argv name: the longest match, so `agent schema` wins over `agent`. */
export function resolveVerb(argv: readonly string[]): Resolved {
  const path: string[] = [];
  for (const word of argv) {
    if (!childrenOf(path).includes(word)) break;
    path.push(word);
  }
  const rest = argv.slice(path.length);
  const spec = allVerbs().find((verb) => verb.path.length === path.length && verb.path.every((word, i) => path[i] === word));
  if (spec) return { kind: "verb", spec, rest };
  const next = rest[0];
  if (path.length === 0 || (next !== undefined && !next.startsWith("-"))) return { kind: "unknown", path, word: next ?? "" };
  return { kind: "group", path, rest };
}
