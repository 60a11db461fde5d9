import { findValidSignature, narInfoFingerprint, parseSha256, toNixBase32, type PublicKey } from "./bundle/keys.js";
import { FerryError } from "./errors.js";
import { assertStorePath } from "./validate.js";

/** One valid store path as `nix path-info --json --sigs` describes it: what a signature covers, and the signatures. */
export interface SignedPathInfo {
  path: string;
  /** As Nix printed it: SRI (`sha256-…`, Nix 2.8) or `sha256:<nix base32>`. */
  narHash: string;
  narSize: number;
  references: string[];
  signatures: string[];
  /** Nix's "built on this machine" flag; reported, never trusted. */
  ultimate: boolean;
}

export interface UntrustedPath {
  path: string;
  reason: string;
}

function bad(detail: string): FerryError {
  return new FerryError("E_COMMAND_FAILED", `unexpected output from nix path-info --json --sigs: ${detail}`);
}

/**
 * Parses `nix path-info --json --sigs` (Nix 2.8: an array of objects; the
 * "signatures" key is absent when a path has none), strictly: whatever does
 * not have the expected shape is an error, never an empty signature list.
 * A path the store lacks (`"valid": false`) is an error too, unless
 * `skipInvalid` (asking a cache what it holds), when it is left out.
 */
export function parseSignedPathInfos(json: string, options: { skipInvalid?: boolean } = {}): SignedPathInfo[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (error) {
    throw bad((error as Error).message);
  }
  if (!Array.isArray(parsed)) throw bad("not a JSON array");
  const entries = options.skipInvalid ? parsed.filter((entry) => (entry as { valid?: unknown } | null)?.valid !== false) : parsed;
  return entries.map((entry: unknown, index): SignedPathInfo => {
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) throw bad(`entry ${index} is not an object`);
    const fields = entry as Record<string, unknown>;
    const path = assertStorePath(fields["path"]);
    if (fields["valid"] === false) throw bad(`${path} is not valid in this store`);
    const { narHash, narSize, references, signatures = [], ultimate = false } = fields;
    if (typeof narHash !== "string") throw bad(`${path} has no narHash`);
    if (typeof narSize !== "number" || !Number.isSafeInteger(narSize)) throw bad(`${path} has no narSize`);
    if (!Array.isArray(references)) throw bad(`${path} has no references`);
    if (!Array.isArray(signatures) || !signatures.every((signature) => typeof signature === "string")) throw bad(`${path} has malformed signatures`);
    if (typeof ultimate !== "boolean") throw bad(`${path} has a malformed ultimate flag`);
    return { path, narHash, narSize, references: references.map(assertStorePath), signatures: signatures as string[], ultimate };
  });
}

/** What a Nix signature over this path covers (Nix's fingerprintPath); undefined when the info cannot be fingerprinted. */
export function signedPathFingerprint(info: Pick<SignedPathInfo, "path" | "narHash" | "narSize" | "references">): string | undefined {
  const digest = parseSha256(info.narHash);
  if (!digest || info.narSize <= 0) return undefined;
  return narInfoFingerprint(info.path, `sha256:${toNixBase32(digest)}`, info.narSize, info.references);
}

/** The trusted key that signed this path's own fingerprint, or undefined. */
export function trustedSigner(info: SignedPathInfo, trusted: ReadonlyMap<string, PublicKey>): string | undefined {
  const fingerprint = signedPathFingerprint(info);
  return fingerprint === undefined ? undefined : findValidSignature(info.signatures, fingerprint, trusted);
}

function keyNameOf(signature: string): string {
  const colon = signature.indexOf(":");
  return colon > 0 ? signature.slice(0, colon) : "(malformed)";
}

/**
 * The first path without a signature by one of `trusted` over its own NAR
 * hash, size and references, with why; undefined when every path has one.
 * A signature made for another path or other contents does not verify, and
 * Nix's "ultimate" flag counts for nothing: whoever can add a path to the
 * store can build one.
 */
export function findUntrustedPath(infos: readonly SignedPathInfo[], trusted: ReadonlyMap<string, PublicKey>): UntrustedPath | undefined {
  for (const info of infos) {
    if (trustedSigner(info, trusted) !== undefined) continue;
    const names = [...new Set(info.signatures.map(keyNameOf))];
    let reason: string;
    if (signedPathFingerprint(info) === undefined) {
      reason = `has an unreadable NAR hash or size (${JSON.stringify(info.narHash.slice(0, 80))}, ${info.narSize})`;
    } else if (names.some((name) => trusted.has(name))) {
      reason = `has a signature by a trusted key (${names.filter((name) => trusted.has(name)).join(", ")}) that does not match its NAR hash, size or references`;
    } else if (names.length > 0) {
      reason = `is signed only by keys this host does not trust (${names.join(", ")})`;
    } else {
      reason = info.ultimate ? "carries no signature (it was built or added on this machine, which does not count)" : "carries no signature";
    }
    return { path: info.path, reason };
  }
  return undefined;
}
