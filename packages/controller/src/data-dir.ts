import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { FerryError, generateToken, hashToken, writeFileAtomic } from "@ferry/core";
import { lockDataDir } from "./data-dir-lock.js";

export interface DataDir {
  root: string;
  databaseFile: string;
  cacheDir: string;
  adminTokenFile: string;
  adminTokenHash: string;
  /** Lets go of the directory after a clean stop. */
  release(): void;
  /**
   * Lets go after a start that failed before the controller was ready,
   * taking back what this start made so the next finds nothing half made: the
   * whole directory if this start created it, else only the files it added
   * (never what was there before).
   */
  abandon(): void;
}

/**
 * Creates the data directory on first start, locks it against a second
 * controller, and reads it on every start. The operator token is written
 * once, 0600; the controller keeps only its hash in memory.
 */
export function openDataDir(root: string): DataDir {
  const lock = lockDataDir(root);
  const databaseFile = join(root, "state.sqlite");
  const adminTokenFile = join(root, "admin.token");
  const cacheDir = join(root, "cache");
  // What a failed start in a directory that existed before must take back;
  // the lock file stays, since another starter may already have it open.
  const made = [adminTokenFile, cacheDir, ...["", "-wal", "-shm", "-journal"].map((suffix) => databaseFile + suffix)].filter((path) => !existsSync(path));
  const abandon = (): void => {
    // Removed while the lock is held, so no other starter is inside it.
    try {
      for (const path of lock.created !== undefined ? [lock.created] : made) rmSync(path, { recursive: true, force: true });
    } finally {
      lock.release();
    }
  };
  try {
    chmodSync(root, 0o700);
    if (!existsSync(adminTokenFile)) writeFileAtomic(adminTokenFile, `${generateToken()}\n`, 0o600);
    const token = readFileSync(adminTokenFile, "utf8").trim();
    if (token.length < 32) throw new FerryError("E_BAD_CONFIG", `${adminTokenFile} holds no usable token; delete it to make a new one`);
    mkdirSync(cacheDir, { recursive: true });
    return { root, databaseFile, cacheDir, adminTokenFile, adminTokenHash: hashToken(token), release: () => lock.release(), abandon };
  } catch (error) {
    abandon();
    throw error;
  }
}
