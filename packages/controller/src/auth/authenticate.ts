import { FerryError, hashToken, type Logger } from "@ferry/core";
import type { TokenStore } from "../store/access-records.js";
import type { Principal } from "./authorize.js";

/** Turns the secret a caller presents into the token it belongs to. */
export interface Authenticator {
  /** E_AUTH for a missing, unknown, revoked or expired token. */
  authenticate(secret: string): Promise<Principal>;
  /** The same check for a token known by its hash (a dashboard session keeps the hash, never the secret). */
  authenticateHash(tokenHash: string): Promise<Principal>;
}

/**
 * Every operator token, the built-in admin one included, is a row of the
 * token store, looked up by the SHA-256 of the secret (random 256-bit
 * secrets need no salt). Each call looks it up afresh, so a revocation or
 * rotation takes effect at the next call.
 */
export function createAuthenticator(tokens: TokenStore, log: Logger, now: () => number = Date.now): Authenticator {
  const authenticateHash = async (tokenHash: string): Promise<Principal> => {
    const record = await tokens.findByHash(tokenHash);
    if (!record) throw new FerryError("E_AUTH", "missing or wrong operator token");
    if (record.revokedAtMs !== 0) {
      log.warn({ token: record.name, revokedAtMs: record.revokedAtMs }, "a revoked operator token was used");
      throw new FerryError("E_AUTH", `operator token ${JSON.stringify(record.name)} was revoked`);
    }
    if (record.expiresAtMs !== 0 && now() >= record.expiresAtMs) {
      log.info({ token: record.name, expiresAtMs: record.expiresAtMs }, "an expired operator token was used");
      throw new FerryError("E_AUTH", `operator token ${JSON.stringify(record.name)} expired at ${new Date(record.expiresAtMs).toISOString()}`);
    }
    return { name: record.name, scopes: record.scopes, tags: record.tags, environments: record.environments };
  };
  return {
    async authenticate(secret) {
      if (secret === "") throw new FerryError("E_AUTH", "missing operator token");
      return authenticateHash(hashToken(secret));
    },
    authenticateHash,
  };
}
