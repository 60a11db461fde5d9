// Store paths described as `nix path-info --json --sigs` prints them, signed
// (or not) by keys made here, for fakes of the Nix runner.
import { createHash, generateKeyPairSync } from "node:crypto";
import { narInfoFingerprint, parseSecretKey, signText, toNixBase32, type SigningKey } from "@ferry/core";

export interface TestKey {
  secret: SigningKey;
  publicKey: string;
}

export function makeKey(name: string): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const d = Buffer.from(privateKey.export({ format: "jwk" }).d as string, "base64url");
  const x = Buffer.from(publicKey.export({ format: "jwk" }).x as string, "base64url");
  return { secret: parseSecretKey(`${name}:${Buffer.concat([d, x]).toString("base64")}`), publicKey: `${name}:${x.toString("base64")}` };
}

export interface PathInfoJson {
  path: string;
  narHash: string;
  narSize: number;
  references: string[];
  ultimate: boolean;
  signatures?: string[];
}

/** The path's entry, with a signature by `key` over its fingerprint unless `key` is null; contents derive from the path. */
export function pathInfoJson(path: string, key: TestKey | null, references: string[] = [], narSize = 4096): PathInfoJson {
  const digest = createHash("sha256").update(path).digest();
  const info: PathInfoJson = { path, narHash: `sha256-${digest.toString("base64")}`, narSize, references, ultimate: key === null };
  if (key) info.signatures = [signText(key.secret, narInfoFingerprint(path, `sha256:${toNixBase32(digest)}`, narSize, references))];
  return info;
}
