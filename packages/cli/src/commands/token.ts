import { FerryError, assertEnvironmentName, assertTag, assertTokenName, parseScope } from "@ferry/core";
import type { TokenInfo } from "@ferry/protocol";
import { parseVerb } from "../args.js";
import { VERBS } from "../spec/index.js";
import { withConnection } from "../client.js";
import { createOutput, table } from "../output.js";
import { parseDuration } from "../units.js";
import { accessCall, accessClient } from "./access-client.js";
import { deliverSecret, requireTokenOut } from "./token-out.js";

const CREATE_USAGE = "ferry token create NAME --scope SCOPE... [--tag TAG]... [--environment ENV]... [--expires DURATION] --token-out FILE|-";
const ROTATE_USAGE = "ferry token rotate NAME [--expires DURATION] --token-out FILE|-";

export async function tokenCommand(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  switch (verb) {
    case "create":
      return tokenCreate(rest);
    case "list":
      return tokenList(rest);
    case "revoke":
      return tokenRevoke(rest);
    case "rotate":
      return tokenRotate(rest);
    default:
      throw new FerryError("E_BAD_ARGUMENT", `unknown verb 'token ${verb ?? ""}': use create, list, revoke or rotate`);
  }
}

function onePositional(positionals: string[], usage: string): string {
  if (positionals.length !== 1) throw new FerryError("E_BAD_ARGUMENT", `usage: ${usage}`);
  return assertTokenName(positionals[0]);
}

function expiresInMs(value: string | undefined): number {
  if (value === undefined) return 0;
  const ms = parseDuration(value, "--expires");
  if (ms <= 0) throw new FerryError("E_BAD_ARGUMENT", "--expires must be a positive duration, e.g. 90d");
  return ms;
}

export function tokenJson(token: TokenInfo, now = Date.now()): Record<string, unknown> {
  return { ...token, state: tokenState(token, now) };
}

function tokenState(token: TokenInfo, now: number): string {
  if (token.revokedAtMs !== 0) return "revoked";
  if (token.expiresAtMs !== 0 && token.expiresAtMs <= now) return "expired";
  return "active";
}

function day(ms: number): string {
  return ms === 0 ? "-" : new Date(ms).toISOString().slice(0, 16).replace("T", " ");
}

function limitsOf(token: TokenInfo): string {
  const limits = [...token.tags.map((tag) => `tag ${tag}`), ...token.environments.map((environment) => `env ${environment}`)];
  return limits.join(", ") || "-";
}

async function tokenCreate(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS["token create"], args);
  const name = onePositional(positionals, CREATE_USAGE);
  // Everything is checked here first, so a mistyped flag creates nothing.
  const scopes = values.scope.flatMap((scope) => scope.split(",")).map((scope) => parseScope(scope.trim()));
  if (scopes.length === 0) throw new FerryError("E_BAD_ARGUMENT", `give at least one --scope. usage: ${CREATE_USAGE}`);
  const tags = values.tag.map(assertTag);
  const environments = values.environment.map(assertEnvironmentName);
  if ((tags.length > 0 || environments.length > 0) && !scopes.includes("deploy")) {
    throw new FerryError("E_BAD_ARGUMENT", "--tag and --environment limit the deploy scope; add --scope deploy");
  }
  const expires = expiresInMs(values.expires);
  const tokenOut = requireTokenOut(values["token-out"], CREATE_USAGE);
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    const client = accessClient(connection);
    const response = await accessCall(connection, client, client.createToken, { name, scopes, tags, environments, expiresInMs: expires });
    const token = response.token as TokenInfo;
    deliverSecret(out, tokenOut, response.secret, "secret", { token: tokenJson(token) }, `created token ${name} (${token.scopes.join(", ")})`);
    return 0;
  });
}

async function tokenList(args: string[]): Promise<number> {
  const { values } = parseVerb(VERBS["token list"], args);
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    const client = accessClient(connection);
    const { tokens } = await accessCall(connection, client, client.listTokens, { includeRevoked: values.all });
    const now = Date.now();
    out.result({ tokens: tokens.map((token) => tokenJson(token, now)) }, () =>
      table(
        ["NAME", "SCOPES", "LIMITS", "STATE", "EXPIRES", "CREATED", "BY"],
        tokens.map((token) => [
          token.name,
          token.scopes.join(","),
          limitsOf(token),
          tokenState(token, now),
          token.expiresAtMs === 0 ? "never" : day(token.expiresAtMs),
          day(token.createdAtMs),
          token.createdBy,
        ]),
      ),
    );
    return 0;
  });
}

async function tokenRevoke(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS["token revoke"], args);
  const name = onePositional(positionals, "ferry token revoke NAME");
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    const client = accessClient(connection);
    const { token } = await accessCall(connection, client, client.revokeToken, { name });
    out.result({ token: token && tokenJson(token) }, () => `revoked token ${name}; it is refused from now on\n`);
    return 0;
  });
}

async function tokenRotate(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS["token rotate"], args);
  const name = onePositional(positionals, ROTATE_USAGE);
  const expires = expiresInMs(values.expires);
  const tokenOut = requireTokenOut(values["token-out"], ROTATE_USAGE);
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    const client = accessClient(connection);
    const response = await accessCall(connection, client, client.rotateToken, { name, expiresInMs: expires });
    const token = response.token as TokenInfo;
    const note = token.builtin ? " (DATA_DIR/admin.token holds it too)" : "";
    deliverSecret(out, tokenOut, response.secret, "secret", { token: tokenJson(token) }, `rotated token ${name}; the old secret is refused from now on${note}`);
    return 0;
  });
}
