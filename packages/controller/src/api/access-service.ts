import { assertHostName, generateToken, hashToken } from "@ferry/core";
import type {
  AccessServiceServer,
  CreateTokenRequest,
  CreateTokenResponse,
  ListAuditRequest,
  ListAuditResponse,
  ListTokensRequest,
  ListTokensResponse,
  RevokeTokenRequest,
  RevokeTokenResponse,
  RotateHostTokenRequest,
  RotateHostTokenResponse,
  RotateTokenRequest,
  RotateTokenResponse,
  TokenInfo,
} from "@ferry/protocol";
import type { TokenAdmin } from "../auth/token-admin.js";
import type { TokenRecord } from "../store/access-records.js";
import type { ApiDeps } from "./api-deps.js";
import { unaryHandler } from "./unary.js";

export interface AccessServiceDeps extends Omit<ApiDeps, "cache" | "hostEvents" | "desired"> {
  tokenAdmin: TokenAdmin;
}

const AUDIT_DEFAULT_LIMIT = 100;
const AUDIT_MAX_LIMIT = 10_000;

function toTokenInfo(record: TokenRecord): TokenInfo {
  return {
    name: record.name,
    scopes: record.scopes,
    tags: record.tags,
    environments: record.environments,
    createdAtMs: record.createdAtMs,
    createdBy: record.createdBy,
    expiresAtMs: record.expiresAtMs,
    revokedAtMs: record.revokedAtMs,
    rotatedAtMs: record.rotatedAtMs,
    builtin: record.builtin,
  };
}

/** Operator tokens, host agent tokens and the audit trail: who may do what, and who did. */
export function createAccessService(deps: AccessServiceDeps): AccessServiceServer {
  const unary = unaryHandler(deps.log, deps.authenticator);
  const { tokenAdmin, audit } = deps;
  const limits = (record: TokenRecord) => ({ scopes: record.scopes, tags: record.tags, environments: record.environments, expiresAtMs: record.expiresAtMs });

  return {
    createToken: unary("CreateToken", async (request: CreateTokenRequest, caller): Promise<CreateTokenResponse> => {
      const { record, secret } = await tokenAdmin.create(request, caller.name);
      await audit.record(caller.name, "token.create", record.name, limits(record));
      return { token: toTokenInfo(record), secret };
    }),

    listTokens: unary("ListTokens", async (request: ListTokensRequest): Promise<ListTokensResponse> => ({
      tokens: (await tokenAdmin.list(request.includeRevoked)).map(toTokenInfo),
    })),

    revokeToken: unary("RevokeToken", async (request: RevokeTokenRequest, caller): Promise<RevokeTokenResponse> => {
      const record = await tokenAdmin.revoke(request.name);
      await audit.record(caller.name, "token.revoke", record.name);
      return { token: toTokenInfo(record) };
    }),

    rotateToken: unary("RotateToken", async (request: RotateTokenRequest, caller): Promise<RotateTokenResponse> => {
      const { record, secret } = await tokenAdmin.rotate(request.name, request.expiresInMs);
      await audit.record(caller.name, "token.rotate", record.name, { expiresAtMs: record.expiresAtMs });
      return { token: toTokenInfo(record), secret };
    }),

    rotateHostToken: unary("RotateHostToken", async (request: RotateHostTokenRequest, caller): Promise<RotateHostTokenResponse> => {
      const name = assertHostName(request.hostName);
      const token = generateToken();
      // The connected agent stays on the link it authenticated; the hub checks tokens only at hello.
      await deps.store.setHostToken(name, hashToken(token));
      const online = deps.hub.isOnline(name);
      deps.log.info({ host: name, online, token: caller.name }, "host agent token rotated");
      await audit.record(caller.name, "host.rotate-token", name, { online });
      return { agentToken: token, online };
    }),

    listAudit: unary("ListAudit", async (request: ListAuditRequest): Promise<ListAuditResponse> => {
      const limit = Math.min(request.limit || AUDIT_DEFAULT_LIMIT, AUDIT_MAX_LIMIT);
      // Cache pushes gathered in the last second show up too.
      await audit.flush();
      const entries = await deps.store.audit.list(limit, request.actor);
      return {
        entries: entries.map((entry) => ({
          id: entry.id,
          atMs: entry.atMs,
          actor: entry.actor,
          action: entry.action,
          target: entry.target,
          detailJson: JSON.stringify(entry.detail),
        })),
      };
    }),
  };
}
