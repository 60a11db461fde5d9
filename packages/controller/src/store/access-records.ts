import type { Scope } from "@ferry/core";

/** A named operator token, as stored: only the SHA-256 of its secret. */
export interface TokenRecord {
  name: string;
  tokenHash: string;
  scopes: Scope[];
  /** deploy only: hosts carrying one of these tags; empty: any host. */
  tags: string[];
  /** deploy only: rollouts of one of these environments; empty: any. */
  environments: string[];
  createdAtMs: number;
  createdBy: string;
  /** 0: never. */
  expiresAtMs: number;
  /** 0: not revoked. */
  revokedAtMs: number;
  rotatedAtMs: number;
  /** The controller's own DATA_DIR/admin.token: cannot be revoked, only rotated. */
  builtin: boolean;
}

export interface TokenStore {
  /** The token with this hash, revoked and expired ones included (the caller tells them apart). */
  findByHash(tokenHash: string): Promise<TokenRecord | undefined>;
  get(name: string): Promise<TokenRecord | undefined>;
  list(includeRevoked: boolean): Promise<TokenRecord[]>;
  /** E_TOKEN_EXISTS when a token of that name is not revoked; a revoked one is replaced. */
  create(record: TokenRecord): Promise<TokenRecord>;
  /** E_UNKNOWN_TOKEN when no unrevoked token has that name. */
  revoke(name: string, nowMs: number): Promise<TokenRecord>;
  /** A new secret for an unrevoked token; `expiresAtMs` undefined keeps its expiry. */
  rotate(name: string, tokenHash: string, nowMs: number, expiresAtMs?: number): Promise<TokenRecord>;
  /** Keeps the built-in admin token's row in step with DATA_DIR/admin.token. */
  setBuiltinAdmin(tokenHash: string, nowMs: number): Promise<void>;
}

/** One recorded action: which token did what to what. */
export interface AuditEntry {
  id: number;
  atMs: number;
  actor: string;
  action: string;
  target: string;
  detail: Record<string, unknown>;
}

export interface AuditStore {
  /** Appends in one transaction. */
  append(entries: readonly Omit<AuditEntry, "id">[]): Promise<void>;
  /** Newest first; `actor` empty: every token. */
  list(limit: number, actor?: string): Promise<AuditEntry[]>;
  /** Deletes entries recorded before `olderThanMs`; returns how many. */
  prune(olderThanMs: number): Promise<number>;
}
