import {
  ADMIN_TOKEN_NAME,
  FerryError,
  assertEnvironmentName,
  assertTag,
  assertTokenName,
  generateToken,
  hashToken,
  parseScope,
  writeFileAtomic,
} from "@ferry/core";
import type { TokenRecord, TokenStore } from "../store/access-records.js";

export interface NewToken {
  name: string;
  scopes: readonly string[];
  tags: readonly string[];
  environments: readonly string[];
  /** 0: never expires. */
  expiresInMs: number;
}

/** Longest lifetime a token may be given: ten years, so that expiry arithmetic stays far from overflow. */
const MAX_LIFETIME_MS = 10 * 365 * 86_400_000;

function lifetime(ms: number): number {
  if (!Number.isSafeInteger(ms) || ms < 0 || ms > MAX_LIFETIME_MS)
    throw new FerryError("E_BAD_ARGUMENT", "a token's lifetime must be between 1 ms and 10 years");
  return ms;
}

/**
 * Creating, revoking and rotating operator tokens. Secrets leave only in the
 * return values; the store keeps their SHA-256. The built-in admin token is
 * the controller's DATA_DIR/admin.token: rotating it rewrites that file
 * atomically first, so a crash leaves a file whose token works after restart.
 */
export class TokenAdmin {
  constructor(
    private readonly tokens: TokenStore,
    private readonly adminTokenFile: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** At every start: the built-in admin token is whatever DATA_DIR/admin.token holds. */
  /**
   * Keeps the built-in admin token's row in step with DATA_DIR/admin.token.
   * Replicas share one row: the first replica's file sets it, and a replica
   * whose file differs leaves it alone (returns false) rather than lock the
   * others' admins out; its operator copies the first one's file.
   */
  async adoptAdminFile(adminTokenHash: string, shared = false): Promise<boolean> {
    if (shared) {
      const current = await this.tokens.get(ADMIN_TOKEN_NAME);
      if (current && current.revokedAtMs === 0 && current.tokenHash !== adminTokenHash) return false;
    }
    await this.tokens.setBuiltinAdmin(adminTokenHash, this.now());
    return true;
  }

  async create(request: NewToken, createdBy: string): Promise<{ record: TokenRecord; secret: string }> {
    const name = assertTokenName(request.name);
    if (name === ADMIN_TOKEN_NAME) throw new FerryError("E_TOKEN_EXISTS", `${ADMIN_TOKEN_NAME} is the controller's own token (DATA_DIR/admin.token)`);
    if (request.scopes.length === 0) throw new FerryError("E_BAD_ARGUMENT", "give the token at least one --scope");
    const scopes = [...new Set(request.scopes.map((scope) => parseScope(scope)))].sort();
    const tags = [...new Set(request.tags.map(assertTag))].sort();
    const environments = [...new Set(request.environments.map(assertEnvironmentName))].sort();
    if ((tags.length > 0 || environments.length > 0) && !scopes.includes("deploy")) {
      throw new FerryError("E_BAD_ARGUMENT", "--tag and --environment limit the deploy scope; the token has no deploy scope");
    }
    const secret = generateToken();
    const nowMs = this.now();
    const record = await this.tokens.create({
      name,
      tokenHash: hashToken(secret),
      scopes,
      tags,
      environments,
      createdAtMs: nowMs,
      createdBy,
      expiresAtMs: request.expiresInMs === 0 ? 0 : nowMs + lifetime(request.expiresInMs),
      revokedAtMs: 0,
      rotatedAtMs: 0,
      builtin: false,
    });
    return { record, secret };
  }

  async revoke(name: string): Promise<TokenRecord> {
    return this.tokens.revoke(assertTokenName(name), this.now());
  }

  /** A new secret, same scopes; the old secret stops working at once. `expiresInMs` 0 keeps the expiry. */
  async rotate(name: string, expiresInMs: number): Promise<{ record: TokenRecord; secret: string }> {
    assertTokenName(name);
    const existing = await this.tokens.get(name);
    if (!existing || existing.revokedAtMs !== 0)
      throw new FerryError("E_UNKNOWN_TOKEN", `no token named ${JSON.stringify(name)}${existing ? " (it was revoked)" : ""}`);
    if (existing.builtin && expiresInMs !== 0) throw new FerryError("E_BAD_ARGUMENT", `the built-in ${ADMIN_TOKEN_NAME} token never expires`);
    const secret = generateToken();
    const nowMs = this.now();
    if (existing.builtin) writeFileAtomic(this.adminTokenFile, `${secret}\n`, 0o600);
    const record = await this.tokens.rotate(name, hashToken(secret), nowMs, expiresInMs === 0 ? undefined : nowMs + lifetime(expiresInMs));
    return { record, secret };
  }

  list(includeRevoked: boolean): Promise<TokenRecord[]> {
    return this.tokens.list(includeRevoked);
  }
}
