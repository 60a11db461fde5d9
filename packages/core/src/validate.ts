import { FerryError } from "./errors.js";

/** Nix's base32 alphabet: digits and lowercase letters without e, o, u and t. */
const NIX_BASE32 = "0123456789abcdfghijklmnpqrsvwxyz";
const STORE_PATH = new RegExp(`^/nix/store/([${NIX_BASE32}]{32})-([A-Za-z0-9+\\-._?=]+)$`);
const MAX_STORE_NAME = 211;

export interface StorePathParts {
  hash: string;
  name: string;
}

/**
 * The single gate for store paths: every path taken from a user, a frame, a
 * file or a database goes through here before it reaches a command line, a
 * file name or a query.
 */
export function parseStorePath(value: unknown): StorePathParts {
  if (typeof value !== "string") {
    throw new FerryError("E_BAD_STORE_PATH", `store path must be a string, got ${typeof value}`);
  }
  const match = STORE_PATH.exec(value);
  if (!match || match[1] === undefined || match[2] === undefined) {
    throw new FerryError("E_BAD_STORE_PATH", `not a Nix store path: ${JSON.stringify(value.slice(0, 300))}`);
  }
  const name = match[2];
  if (name.startsWith(".") || name.length > MAX_STORE_NAME) {
    throw new FerryError("E_BAD_STORE_PATH", `invalid store path name: ${JSON.stringify(name.slice(0, 300))}`);
  }
  return { hash: match[1], name };
}

export function assertStorePath(value: unknown): string {
  parseStorePath(value);
  return value as string;
}

export function isStorePath(value: unknown): value is string {
  try {
    parseStorePath(value);
    return true;
  } catch {
    return false;
  }
}

const STORE_HASH = new RegExp(`^[${NIX_BASE32}]{32}$`);

export function isStoreHash(value: string): boolean {
  return STORE_HASH.test(value);
}

/** A 32-character hash part, as used in narinfo file names. */
export function assertStoreHash(value: string): string {
  if (!isStoreHash(value)) {
    throw new FerryError("E_BAD_STORE_PATH", `not a store path hash: ${JSON.stringify(value.slice(0, 100))}`);
  }
  return value;
}

const HOST_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/**
 * The single gate for host names, and the one place their case is decided. A
 * host name becomes a file name, a database key and a log field, so only
 * DNS-style names pass: no '/', no '..', no spaces. DNS names ignore case
 * (RFC 4343), so `Web-2` and `web-2` are one host: the result is the canonical
 * lower-case form, and callers keep the result rather than their input.
 */
export function assertHostName(value: unknown): string {
  if (typeof value !== "string" || value.length === 0 || value.length > 253) {
    throw new FerryError("E_BAD_HOST_NAME", `invalid host name: ${JSON.stringify(value)}`);
  }
  const labels = value.split(".");
  if (!labels.every((label) => HOST_LABEL.test(label))) {
    throw new FerryError("E_BAD_HOST_NAME", `invalid host name: ${JSON.stringify(value.slice(0, 300))}`);
  }
  return value.toLowerCase();
}

/**
 * Canonicalises the keys of a host → value map (a manifest, HOST=PATH
 * arguments). Two keys naming one host are refused, since either silently
 * winning would deploy something nobody chose.
 */
export function canonicalHostMap<T>(entries: Iterable<readonly [string, T]>): Map<string, T> {
  const out = new Map<string, T>();
  const given = new Map<string, string>();
  for (const [name, value] of entries) {
    const canonical = assertHostName(name);
    const earlier = given.get(canonical);
    if (earlier !== undefined) {
      throw new FerryError("E_BAD_HOST_NAME", `${JSON.stringify(earlier)} and ${JSON.stringify(name)} are the same host (${canonical}); name it once`);
    }
    given.set(canonical, name);
    out.set(canonical, value);
  }
  return out;
}

const TAG = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export function assertTag(value: unknown): string {
  if (typeof value !== "string" || !TAG.test(value)) {
    throw new FerryError("E_BAD_TAG", `invalid tag: ${JSON.stringify(value)}`);
  }
  return value;
}

/** Parses "HOST:PORT" (IPv6 in brackets) for listeners and dialers. */
export function parseHostPort(value: string, flag: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(value);
  const port = match ? Number(match[3]) : NaN;
  if (!match || !(port >= 0 && port <= 65535)) {
    throw new FerryError("E_BAD_ARGUMENT", `${flag} expects HOST:PORT, got ${JSON.stringify(value)}`);
  }
  return { host: (match[1] ?? match[2]) as string, port };
}
