import type Database from "better-sqlite3";
import { ADMIN_TOKEN_NAME, FerryError, type Scope } from "@ferry/core";
import type { TokenRecord, TokenStore } from "./access-records.js";

/** Part of the schema migration that introduced scoped tokens (see sqlite-store.ts). */
export const TOKENS_SCHEMA = `
  CREATE TABLE operator_tokens (
    name TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]',
    environments TEXT NOT NULL DEFAULT '[]',
    created_at_ms INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL DEFAULT 0,
    revoked_at_ms INTEGER NOT NULL DEFAULT 0,
    rotated_at_ms INTEGER NOT NULL DEFAULT 0,
    builtin INTEGER NOT NULL DEFAULT 0
  );`;

interface TokenRow {
  name: string;
  token_hash: string;
  scopes: string;
  tags: string;
  environments: string;
  created_at_ms: number;
  created_by: string;
  expires_at_ms: number;
  revoked_at_ms: number;
  rotated_at_ms: number;
  builtin: number;
}

function toRecord(row: TokenRow): TokenRecord {
  return {
    name: row.name,
    tokenHash: row.token_hash,
    scopes: JSON.parse(row.scopes) as Scope[],
    tags: JSON.parse(row.tags) as string[],
    environments: JSON.parse(row.environments) as string[],
    createdAtMs: row.created_at_ms,
    createdBy: row.created_by,
    expiresAtMs: row.expires_at_ms,
    revokedAtMs: row.revoked_at_ms,
    rotatedAtMs: row.rotated_at_ms,
    builtin: row.builtin === 1,
  };
}

export class SqliteTokenStore implements TokenStore {
  constructor(private readonly db: Database.Database) {}

  private row(name: string): TokenRow | undefined {
    return this.db.prepare("SELECT * FROM operator_tokens WHERE name = ?").get(name) as TokenRow | undefined;
  }

  private active(name: string): TokenRow {
    const row = this.row(name);
    if (!row || row.revoked_at_ms !== 0) throw new FerryError("E_UNKNOWN_TOKEN", `no token named ${JSON.stringify(name)}${row ? " (it was revoked)" : ""}`);
    return row;
  }

  async findByHash(tokenHash: string): Promise<TokenRecord | undefined> {
    const row = this.db.prepare("SELECT * FROM operator_tokens WHERE token_hash = ?").get(tokenHash) as TokenRow | undefined;
    return row && toRecord(row);
  }

  async get(name: string): Promise<TokenRecord | undefined> {
    const row = this.row(name);
    return row && toRecord(row);
  }

  async list(includeRevoked: boolean): Promise<TokenRecord[]> {
    const rows = this.db.prepare(`SELECT * FROM operator_tokens ${includeRevoked ? "" : "WHERE revoked_at_ms = 0"} ORDER BY name`).all() as TokenRow[];
    return rows.map(toRecord);
  }

  async create(record: TokenRecord): Promise<TokenRecord> {
    return this.db.transaction(() => {
      const existing = this.row(record.name);
      if (existing && existing.revoked_at_ms === 0) throw new FerryError("E_TOKEN_EXISTS", `a token named ${record.name} already exists`);
      // A revoked token's name may be used again; the audit trail keeps what the old one did.
      if (existing) this.db.prepare("DELETE FROM operator_tokens WHERE name = ?").run(record.name);
      this.db
        .prepare(
          `INSERT INTO operator_tokens (name, token_hash, scopes, tags, environments, created_at_ms, created_by, expires_at_ms, builtin)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)`,
        )
        .run(
          record.name,
          record.tokenHash,
          JSON.stringify(record.scopes),
          JSON.stringify(record.tags),
          JSON.stringify(record.environments),
          record.createdAtMs,
          record.createdBy,
          record.expiresAtMs,
        );
      return toRecord(this.row(record.name) as TokenRow);
    })();
  }

  async revoke(name: string, nowMs: number): Promise<TokenRecord> {
    return this.db.transaction(() => {
      const row = this.active(name);
      if (row.builtin === 1) {
        throw new FerryError(
          "E_BAD_ARGUMENT",
          `the built-in ${ADMIN_TOKEN_NAME} token cannot be revoked; give it a new secret instead: ferry token rotate ${name}`,
        );
      }
      this.db.prepare("UPDATE operator_tokens SET revoked_at_ms = ? WHERE name = ?").run(nowMs, name);
      return toRecord(this.row(name) as TokenRow);
    })();
  }

  async rotate(name: string, tokenHash: string, nowMs: number, expiresAtMs?: number): Promise<TokenRecord> {
    return this.db.transaction(() => {
      const row = this.active(name);
      this.db
        .prepare("UPDATE operator_tokens SET token_hash = ?, rotated_at_ms = ?, expires_at_ms = ? WHERE name = ?")
        .run(tokenHash, nowMs, expiresAtMs ?? row.expires_at_ms, name);
      return toRecord(this.row(name) as TokenRow);
    })();
  }

  async setBuiltinAdmin(tokenHash: string, nowMs: number): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO operator_tokens (name, token_hash, scopes, created_at_ms, created_by, builtin) VALUES (?, ?, ?, ?, 'controller', 1)
         ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash, revoked_at_ms = 0, expires_at_ms = 0, builtin = 1, scopes = excluded.scopes,
           rotated_at_ms = CASE WHEN token_hash = excluded.token_hash THEN rotated_at_ms ELSE ? END`,
      )
      .run(ADMIN_TOKEN_NAME, tokenHash, JSON.stringify(["admin"]), nowMs, nowMs);
  }
}
