import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from "node:crypto";
import { FerryError } from "../errors.js";
import { readTextFile } from "../system-errors.js";

/**
 * Ed25519 keys in Nix's own text format, so operators handle one kind of key:
 * `NAME:BASE64`, where a secret key is 64 bytes (seed, then public key) and a
 * public key 32 bytes. `ferry keys generate` (nix-store
 * --generate-binary-cache-key) makes both.
 */
export interface SigningKey {
  name: string;
  privateKey: KeyObject;
  /** The matching public key in Nix's text format. */
  publicKey: string;
}

export interface PublicKey {
  name: string;
  key: KeyObject;
}

const KEY_NAME = /^[A-Za-z0-9._+-]{1,100}$/;

function splitKey(text: string, what: string, bytes: number): { name: string; raw: Buffer } {
  const trimmed = text.trim();
  const colon = trimmed.indexOf(":");
  const name = trimmed.slice(0, colon);
  const raw = Buffer.from(trimmed.slice(colon + 1), "base64");
  if (colon <= 0 || !KEY_NAME.test(name) || raw.length !== bytes || raw.toString("base64") !== trimmed.slice(colon + 1)) {
    throw new FerryError("E_BAD_ARGUMENT", `not a Nix ${what} key (NAME:BASE64 of ${bytes} bytes): ${JSON.stringify(trimmed.slice(0, 40))}…`);
  }
  return { name, raw };
}

export function parsePublicKey(text: string): PublicKey {
  const { name, raw } = splitKey(text, "public", 32);
  return { name, key: createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") }, format: "jwk" }) };
}

export function parseSecretKey(text: string): SigningKey {
  const { name, raw } = splitKey(text, "secret", 64);
  const seed = raw.subarray(0, 32);
  const pub = raw.subarray(32);
  const privateKey = createPrivateKey({ key: { kty: "OKP", crv: "Ed25519", d: seed.toString("base64url"), x: pub.toString("base64url") }, format: "jwk" });
  // A secret key file whose halves do not belong together would sign with a key nobody trusts.
  const derived = createPublicKey(privateKey).export({ format: "jwk" }).x;
  if (derived !== pub.toString("base64url")) throw new FerryError("E_BAD_ARGUMENT", `secret key ${name}: its public half does not match its seed`);
  return { name, privateKey, publicKey: `${name}:${pub.toString("base64")}` };
}

export function readSecretKeyFile(file: string): SigningKey {
  return parseSecretKey(readTextFile(file, "signing key"));
}

/** Parses many public keys; duplicates by name keep the first. */
export function parsePublicKeys(texts: readonly string[]): Map<string, PublicKey> {
  const keys = new Map<string, PublicKey>();
  for (const text of texts) {
    const key = parsePublicKey(text);
    if (!keys.has(key.name)) keys.set(key.name, key);
  }
  return keys;
}

/** A signature in Nix's `NAME:BASE64` form over `message`. */
export function signText(key: SigningKey, message: string): string {
  return `${key.name}:${sign(null, Buffer.from(message, "utf8"), key.privateKey).toString("base64")}`;
}

/** The name of the trusted key that made one of `signatures` over `message`, or undefined. */
export function findValidSignature(signatures: readonly string[], message: string, trusted: ReadonlyMap<string, PublicKey>): string | undefined {
  const data = Buffer.from(message, "utf8");
  for (const signature of signatures) {
    const colon = signature.indexOf(":");
    const key = trusted.get(signature.slice(0, colon));
    if (colon <= 0 || !key) continue;
    const raw = Buffer.from(signature.slice(colon + 1), "base64");
    if (raw.length === 64 && verify(null, data, key.key, raw)) return key.name;
  }
  return undefined;
}

const NIX_BASE32 = "0123456789abcdfghijklmnpqrsvwxyz";

/** Nix's base32 (its own alphabet and bit order), as in `sha256:…` narinfo hashes. */
export function toNixBase32(bytes: Uint8Array): string {
  const length = Math.ceil((bytes.length * 8) / 5);
  let out = "";
  for (let n = length - 1; n >= 0; n--) {
    const bit = n * 5;
    const i = Math.floor(bit / 8);
    const j = bit % 8;
    const low = (bytes[i] ?? 0) >> j;
    const high = i + 1 < bytes.length ? (bytes[i + 1] ?? 0) << (8 - j) : 0;
    out += NIX_BASE32[(low | high) & 0x1f];
  }
  return out;
}

/** "sha256:<nix base32>" or "sha256-<base64>" (SRI) to the raw digest; undefined when neither. */
export function parseSha256(text: string): Buffer | undefined {
  if (/^sha256-[A-Za-z0-9+/]{43}=$/.test(text)) return Buffer.from(text.slice(7), "base64");
  const match = /^sha256:([0-9a-df-np-sv-z]{52})$/.exec(text);
  if (!match) return undefined;
  const chars = match[1] as string;
  const bytes = Buffer.alloc(32);
  for (let n = 0; n < 52; n++) {
    const digit = NIX_BASE32.indexOf(chars[51 - n] as string);
    const bit = n * 5;
    const i = Math.floor(bit / 8);
    const j = bit % 8;
    bytes[i] = ((bytes[i] as number) | (digit << j)) & 0xff;
    if (i + 1 < 32) bytes[i + 1] = ((bytes[i + 1] as number) | (digit >> (8 - j))) & 0xff;
    else if (digit >> (8 - j) !== 0) return undefined;
  }
  return bytes;
}

/** What a Nix path signature covers (Nix's ValidPathInfo::fingerprint). */
export function narInfoFingerprint(storePath: string, narHash: string, narSize: number, references: readonly string[]): string {
  return `1;${storePath};${narHash};${narSize};${[...references].sort().join(",")}`;
}
