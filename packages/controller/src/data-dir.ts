import { chmodSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { FerryError, generateToken, hashToken, writeFileAtomic } from "@ferry/core";

export interface DataDir {
  root: string;
  databaseFile: string;
  cacheDir: string;
  adminTokenFile: string;
  adminTokenHash: string;
}

/**
 * Creates the data directory on first start and reads it on every start. The
 * operator token is written once, 0600; the controller keeps only its hash in
 * memory.
 */
export function openDataDir(root: string): DataDir {
  mkdirSync(root, { recursive: true, mode: 0o700 });
  chmodSync(root, 0o700);
  const adminTokenFile = join(root, "admin.token");
  if (!existsSync(adminTokenFile)) writeFileAtomic(adminTokenFile, `${generateToken()}\n`, 0o600);
  const token = readFileSync(adminTokenFile, "utf8").trim();
  if (token.length < 32) throw new FerryError("E_BAD_CONFIG", `${adminTokenFile} holds no usable token; delete it to make a new one`);
  const cacheDir = join(root, "cache");
  mkdirSync(cacheDir, { recursive: true });
  return { root, databaseFile: join(root, "state.sqlite"), cacheDir, adminTokenFile, adminTokenHash: hashToken(token) };
}
