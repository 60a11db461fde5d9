import { CONNECTION_ENV, CONNECTION_FLAGS } from "./common.js";
import type { VerbSpec } from "./types.js";

const TOKEN_OUT = {
  type: "string",
  required: true,
  value: "FILE|-",
  complete: "file",
  description: "where the secret goes: FILE (mode 0600), or - for stdout; never printed otherwise",
} as const;

const EXPIRES = { type: "string", value: "DURATION", description: "the token stops working after this long (90s, 12h, 90d)", defaultText: "never" } as const;

export const TOKEN_CREATE = {
  path: ["token", "create"],
  summary: "make a named operator token with scopes (read, cache:push, deploy, hosts:admin, bundles:import, admin)",
  section: "operator",
  positionals: { synopsis: "NAME", min: 1, max: 1 },
  flags: {
    scope: { type: "string", multiple: true, default: [], value: "SCOPE", description: "what the token may do (repeatable, or comma-separated)" },
    tag: { type: "string", multiple: true, default: [], value: "TAG", description: "limit the deploy scope to hosts carrying one of these tags (repeatable)" },
    environment: {
      type: "string",
      multiple: true,
      default: [],
      value: "ENV",
      description: "limit the deploy scope to rollouts of these environments (repeatable)",
    },
    expires: EXPIRES,
    "token-out": TOKEN_OUT,
    ...CONNECTION_FLAGS,
  },
  env: CONNECTION_ENV,
  example: "ferry token create ci-staging --scope deploy --scope read --tag staging --environment staging --expires 90d --token-out ci-staging.token",
} as const satisfies VerbSpec;

export const TOKEN_LIST = {
  path: ["token", "list"],
  summary: "the operator tokens: scopes, limits, expiry, who made them",
  section: "operator",
  flags: { all: { type: "boolean", default: false, description: "include revoked tokens" }, ...CONNECTION_FLAGS },
  env: CONNECTION_ENV,
  example: "ferry token list",
} as const satisfies VerbSpec;

export const TOKEN_REVOKE = {
  path: ["token", "revoke"],
  summary: "stop a token from working, at once",
  section: "operator",
  positionals: { synopsis: "NAME", min: 1, max: 1 },
  flags: CONNECTION_FLAGS,
  env: CONNECTION_ENV,
  example: "ferry token revoke ci-staging",
} as const satisfies VerbSpec;

export const TOKEN_ROTATE = {
  path: ["token", "rotate"],
  summary: "give a token a new secret; the old one is refused from now on (rotate admin rewrites DATA_DIR/admin.token)",
  section: "operator",
  positionals: { synopsis: "NAME", min: 1, max: 1 },
  flags: { expires: EXPIRES, "token-out": TOKEN_OUT, ...CONNECTION_FLAGS },
  env: CONNECTION_ENV,
  example: "ferry token rotate ci-staging --token-out ci-staging.token",
} as const satisfies VerbSpec;

export const HOST_ROTATE_TOKEN = {
  path: ["host", "rotate-token"],
  summary: "a new agent token for a host; the connected agent keeps its link",
  section: "operator",
  positionals: { synopsis: "HOST", min: 1, max: 1 },
  flags: { "token-out": TOKEN_OUT, ...CONNECTION_FLAGS },
  env: CONNECTION_ENV,
  example: "ferry host rotate-token web-1 --token-out web-1.token",
  notes: "The agent reads its tokenFile at every connection: put the new token there before its link next drops.",
} as const satisfies VerbSpec;

export const AUDIT = {
  path: ["audit"],
  summary: "who did what, when: every recorded action under the name of the token that did it",
  section: "operator",
  flags: {
    limit: { type: "string", value: "N", default: "50", description: "show at most N entries (up to 10000)" },
    token: { type: "string", value: "NAME", description: "only this token's actions" },
    ...CONNECTION_FLAGS,
  },
  env: CONNECTION_ENV,
  example: "ferry audit --token ci-staging --limit 20",
} as const satisfies VerbSpec;
