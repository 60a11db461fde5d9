import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "./atomic-file.js";
import { FerryError } from "./errors.js";
import type { Nix } from "./nix.js";

export interface KeyPairFiles {
  secretFile: string;
  publicFile: string;
  publicKey: string;
}

function isExists(error: unknown): boolean {
  return (error as { code?: unknown }).code === "EEXIST";
}

function refuse(file: string): FerryError {
  return new FerryError(
    "E_KEY_EXISTS",
    `${file} exists; replacing it would leave every host that trusts the current public key refusing what the new one signs`,
  );
}

/**
 * Makes a Nix signing key pair DIR/NAME.secret (0600) and DIR/NAME.public.
 * An existing pair is kept unless `force`: every host trusts the public half,
 * so a silently replaced secret orphans the fleet. nix-store writes its files
 * in place with the umask's mode, so it writes into a private directory and
 * the files are then placed atomically with their own modes.
 */
export async function generateKeyPair(nix: Nix, name: string, dir: string, options: { force?: boolean } = {}): Promise<KeyPairFiles> {
  const secretFile = join(dir, `${name}.secret`);
  const publicFile = join(dir, `${name}.public`);
  const replace = options.force === true;
  if (!replace) {
    for (const file of [secretFile, publicFile]) if (existsSync(file)) throw refuse(file);
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const scratch = mkdtempSync(join(dir, `.${name}.`));
  try {
    await nix.generateKey(name, join(scratch, "secret"), join(scratch, "public"));
    const secret = readFileSync(join(scratch, "secret"));
    const publicKey = readFileSync(join(scratch, "public"), "utf8").trim();
    try {
      writeFileAtomic(secretFile, secret, 0o600, { replace });
    } catch (error) {
      throw isExists(error) ? refuse(secretFile) : error;
    }
    try {
      writeFileAtomic(publicFile, `${publicKey}\n`, 0o644, { replace });
    } catch (error) {
      // Another writer got there between our check and now: leave no secret without its public half.
      if (!isExists(error)) throw error;
      unlinkSync(secretFile);
      throw refuse(publicFile);
    }
    return { secretFile, publicFile, publicKey };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
