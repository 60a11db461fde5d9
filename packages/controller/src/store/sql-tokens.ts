import type { Selectable } from "kysely";
import { ADMIN_TOKEN_NAME, FerryError, type Scope } from "@ferry/core";
import type { TokenRecord, TokenStore } from "./access-records.js";
import type { Db, OperatorTokensTable } from "./sql-schema.js";

type TokenRow = Selectable<OperatorTokensTable>;

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

export class SqlTokenStore implements TokenStore {
  constructor(private readonly db: Db) {}

  private async row(db: Db, name: string): Promise<TokenRow | undefined> {
    return db.selectFrom("operator_tokens").selectAll().where("name", "=", name).executeTakeFirst();
  }

  private async active(db: Db, name: string): Promise<TokenRow> {
    const row = await this.row(db, name);
    if (!row || row.revoked_at_ms !== 0) throw new FerryError("E_UNKNOWN_TOKEN", `no token named ${JSON.stringify(name)}${row ? " (it was revoked)" : ""}`);
    return row;
  }

  async findByHash(tokenHash: string): Promise<TokenRecord | undefined> {
    const row = await this.db.selectFrom("operator_tokens").selectAll().where("token_hash", "=", tokenHash).executeTakeFirst();
    return row && toRecord(row);
  }

  async get(name: string): Promise<TokenRecord | undefined> {
    const row = await this.row(this.db, name);
    return row && toRecord(row);
  }

  async list(includeRevoked: boolean): Promise<TokenRecord[]> {
    let query = this.db.selectFrom("operator_tokens").selectAll().orderBy("name");
    if (!includeRevoked) query = query.where("revoked_at_ms", "=", 0);
    return (await query.execute()).map(toRecord);
  }

  async create(record: TokenRecord): Promise<TokenRecord> {
    return this.db.transaction().execute(async (trx) => {
      const existing = await this.row(trx, record.name);
      if (existing && existing.revoked_at_ms === 0) throw new FerryError("E_TOKEN_EXISTS", `a token named ${record.name} already exists`);
      // A revoked token's name may be used again; the audit trail keeps what the old one did.
      if (existing) await trx.deleteFrom("operator_tokens").where("name", "=", record.name).execute();
      await trx
        .insertInto("operator_tokens")
        .values({
          name: record.name,
          token_hash: record.tokenHash,
          scopes: JSON.stringify(record.scopes),
          tags: JSON.stringify(record.tags),
          environments: JSON.stringify(record.environments),
          created_at_ms: record.createdAtMs,
          created_by: record.createdBy,
          expires_at_ms: record.expiresAtMs,
          revoked_at_ms: 0,
          rotated_at_ms: 0,
          builtin: 0,
        })
        .execute();
      return toRecord((await this.row(trx, record.name)) as TokenRow);
    });
  }

  async revoke(name: string, nowMs: number): Promise<TokenRecord> {
    return this.db.transaction().execute(async (trx) => {
      const row = await this.active(trx, name);
      if (row.builtin === 1) {
        throw new FerryError(
          "E_BAD_ARGUMENT",
          `the built-in ${ADMIN_TOKEN_NAME} token cannot be revoked; give it a new secret instead: ferry token rotate ${name}`,
        );
      }
      await trx.updateTable("operator_tokens").set({ revoked_at_ms: nowMs }).where("name", "=", name).execute();
      return toRecord((await this.row(trx, name)) as TokenRow);
    });
  }

  async rotate(name: string, tokenHash: string, nowMs: number, expiresAtMs?: number): Promise<TokenRecord> {
    return this.db.transaction().execute(async (trx) => {
      const row = await this.active(trx, name);
      await trx
        .updateTable("operator_tokens")
        .set({ token_hash: tokenHash, rotated_at_ms: nowMs, expires_at_ms: expiresAtMs ?? row.expires_at_ms })
        .where("name", "=", name)
        .execute();
      return toRecord((await this.row(trx, name)) as TokenRow);
    });
  }

  async setBuiltinAdmin(tokenHash: string, nowMs: number): Promise<void> {
    await this.db
      .insertInto("operator_tokens")
      .values({
        name: ADMIN_TOKEN_NAME,
        token_hash: tokenHash,
        scopes: JSON.stringify(["admin"]),
        tags: "[]",
        environments: "[]",
        created_at_ms: nowMs,
        created_by: "controller",
        expires_at_ms: 0,
        revoked_at_ms: 0,
        rotated_at_ms: 0,
        builtin: 1,
      })
      .onConflict((conflict) =>
        conflict.column("name").doUpdateSet((eb) => ({
          token_hash: eb.ref("excluded.token_hash"),
          revoked_at_ms: 0,
          expires_at_ms: 0,
          builtin: 1,
          scopes: eb.ref("excluded.scopes"),
          rotated_at_ms: eb
            .case()
            .when("operator_tokens.token_hash", "=", eb.ref("excluded.token_hash"))
            .then(eb.ref("operator_tokens.rotated_at_ms"))
            .else(nowMs)
            .end(),
        })),
      )
      .execute();
  }
}
