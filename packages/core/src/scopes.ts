import { FerryError } from "./errors.js";

/**
 * Ferry's one vocabulary for what an operator token may do. A token holds
 * one or more scopes; `admin` holds every other one. `deploy` may be limited
 * to hosts carrying some tags and/or to rollouts of some environments.
 */
export const SCOPES = ["read", "cache:push", "deploy", "hosts:admin", "bundles:import", "admin"] as const;
export type Scope = (typeof SCOPES)[number];

/** One line per scope, for help texts and `ferry token list`. */
export const SCOPE_SUMMARY: Readonly<Record<Scope, string>> = {
  read: "status, host list, watch, rollout status/list, window list, site inventory",
  "cache:push": "upload to the binary cache (ferry cache push, nix copy --to)",
  deploy: "deploy, dry-activate, rollout start/pause/resume/abort/promote (limited by --tag / --environment)",
  "hosts:admin": "host add/remove/rotate-token, maintenance windows add/remove",
  "bundles:import": "bundle import (upload and publish)",
  admin: "everything, including tokens, the audit trail and cache rm",
};

/** The name the controller's own DATA_DIR/admin.token goes by. */
export const ADMIN_TOKEN_NAME = "admin";

const LABEL = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export function isScope(value: string): value is Scope {
  return (SCOPES as readonly string[]).includes(value);
}

/** Reads a scope an operator typed; `source` names where it came from, for the error. */
export function parseScope(text: string, source = "--scope"): Scope {
  if (isScope(text)) return text;
  throw new FerryError("E_BAD_ARGUMENT", `${source} must be one of ${SCOPES.join(", ")}; got ${JSON.stringify(text)}`);
}

/** Token names are labels (letters, digits, '.', '_', '-'; at most 63 chars): they appear in every audit entry. */
export function assertTokenName(value: unknown): string {
  if (typeof value !== "string" || !LABEL.test(value)) {
    throw new FerryError("E_BAD_ARGUMENT", `invalid token name ${JSON.stringify(value)}: use letters, digits, '.', '_' and '-', at most 63 chars`);
  }
  return value;
}

/** An environment a deploy token is limited to: a label, like a rollout's --environment. */
export function assertEnvironmentName(value: unknown): string {
  if (typeof value !== "string" || !LABEL.test(value)) {
    throw new FerryError("E_BAD_ARGUMENT", `invalid environment ${JSON.stringify(value)}: use letters, digits, '.', '_' and '-', at most 63 chars`);
  }
  return value;
}
