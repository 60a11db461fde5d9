import { createHash } from "node:crypto";
import type { SignedIntent } from "@ferry/protocol/agent-channel";
import { FerryError } from "../errors.js";
import { readSignedIntent } from "../intent.js";
import { signedIntentsFromJson } from "../intent-file.js";
import { assertHostName, assertStorePath, canonicalHostMap } from "../validate.js";
import { findValidSignature, signText, type PublicKey, type SigningKey } from "./keys.js";

/** Readers accept bundles of this major version only; minor additions are ignored by older readers. */
export const BUNDLE_FORMAT = "ferry-bundle";
export const BUNDLE_VERSION = 1;
/**
 * Version 2 streams from the store: the files come first and the signed
 * manifest last (the writer learns each compressed NAR's hash only as it
 * writes it). Same manifest fields; readers accept 1 and 2.
 */
export const BUNDLE_VERSION_STREAMED = 2;
export const BUNDLE_VERSIONS: readonly number[] = [BUNDLE_VERSION, BUNDLE_VERSION_STREAMED];
/** 1.1 added `site` and `expiresAt`, 1.2 `intents`; 1.0 and 1.1 bundles are still read. */
export const BUNDLE_MINOR_VERSION = 2;
export const MANIFEST_FILE = "manifest.json";
/** A version 2 bundle's first entry, with STREAMED_MARKER_TEXT: older readers name it when they refuse the file. */
export const STREAMED_MARKER_FILE = "ferry-bundle-v2";
/**
 * A version 2 bundle's signed head, right after the marker: the sequence and
 * the paths (with NAR sizes) the bundle will carry, in order, so that a reader
 * checks a signature before it stages a byte, stages only what the head
 * announced, and bounds its size. The manifest at the end must agree with it.
 */
export const HEAD_FILE = "head.json";
export const HEAD_SIGNATURE_FILE = "head.sig";
export const HEAD_FORMAT = "ferry-bundle-head";
export const STREAMED_MARKER_TEXT = "Ferry bundle, format version 2: the files first, the signed manifest.json and manifest.sig last.\n";
export const SIGNATURE_FILE = "manifest.sig";
/**
 * A detached cache manifest (ferry bundle sign-cache) is a format 1 bundle
 * without its NARs, after this marker entry: the NARs come from a plain file
 * cache tarball, checked against it at import (cache-manifest.ts).
 */
export const CACHE_MANIFEST_MARKER_FILE = "ferry-cache-manifest";
export const CACHE_MANIFEST_MARKER_TEXT = "Ferry cache manifest: the signed manifest and narinfos of a file cache tarball that travels on its own.\n";
export const CACHE_INFO_FILE = "nix-cache-info";
export const NIX_CACHE_INFO = "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 10\n";
export const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;
export const MAX_SIGNATURE_BYTES = 64 * 1024;
export const MAX_NARINFO_BYTES = 64 * 1024;

/** A file inside the bundle: its tar name, size and SHA-256 (hex). */
export interface BundleFile {
  file: string;
  size: number;
  sha256: string;
}

/** A store path the bundle carries, in the order its files appear in the archive. */
export interface BundlePath {
  storePath: string;
  narHash: string;
  narSize: number;
  narinfo: BundleFile;
  nar: BundleFile;
}

/** A path of the closure that a delta bundle leaves out because the site has it. */
export interface OmittedPath {
  storePath: string;
  narHash: string;
  narSize: number;
}

export interface BundleManifest {
  format: typeof BUNDLE_FORMAT;
  version: number;
  minorVersion: number;
  createdAt: string;
  /** Strictly increasing per deploy key; a site refuses any bundle not newer than its last. */
  sequence: number;
  hosts: Record<string, string>;
  nixCacheInfo: BundleFile;
  paths: BundlePath[];
  omitted: OmittedPath[];
  /** Set for delta bundles: the inventory they were cut against. */
  since: { inventorySha256: string; lastSequence: number } | null;
  /** The site the bundle is for; a site with a name refuses bundles for another (or none). */
  site: string | null;
  /** After this instant (ISO 8601, UTC) no site or host takes the bundle. */
  expiresAt: string | null;
  /** Signed deploy intents for some of the hosts (at most one each); hosts check them with their intentPublicKeys. */
  intents: SignedIntent[];
}

export const NARINFO_NAME = /^[0-9a-df-np-sv-z]{32}\.narinfo$/;
export const NAR_NAME = /^nar\/[0-9a-df-np-sv-z]{52}\.nar(\.(zst|xz|bz2))?$/;
const ISO_TIME = /^\d{4}-\d\d-\d\dT[0-9:.]+Z$/;
const HASH_TEXT = /^sha256[:-][A-Za-z0-9+/=]{43,52}$/;

function bad(message: string): FerryError {
  return new FerryError("E_BUNDLE_FORMAT", `manifest: ${message}`);
}

function object(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw bad(`${what} must be an object`);
  return value as Record<string, unknown>;
}

function count(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) throw bad(`${what} must be a non-negative integer`);
  return value;
}

function text(value: unknown, what: string, pattern?: RegExp): string {
  if (typeof value !== "string" || (pattern && !pattern.test(value))) throw bad(`${what} is malformed`);
  return value;
}

function bundleFile(value: unknown, what: string, name: RegExp): BundleFile {
  const raw = object(value, what);
  return {
    file: text(raw["file"], `${what}.file`, name),
    size: count(raw["size"], `${what}.size`),
    sha256: text(raw["sha256"], `${what}.sha256`, /^[0-9a-f]{64}$/),
  };
}

/** Parses and checks the manifest's shape; unknown fields (later minor versions) are dropped. */
export function parseManifest(bytes: Buffer): BundleManifest {
  let raw: Record<string, unknown>;
  try {
    raw = object(JSON.parse(bytes.toString("utf8")), "the manifest");
  } catch (error) {
    throw error instanceof FerryError ? error : bad(`not JSON: ${(error as Error).message}`);
  }
  if (raw["format"] !== BUNDLE_FORMAT) throw bad(`not a Ferry bundle manifest (format ${JSON.stringify(raw["format"])})`);
  const version = raw["version"];
  if (typeof version !== "number" || !BUNDLE_VERSIONS.includes(version)) {
    throw new FerryError("E_BUNDLE_VERSION", `bundle format version ${JSON.stringify(version)}; this Ferry reads versions ${BUNDLE_VERSIONS.join(" and ")}`);
  }
  const hosts = Object.fromEntries(canonicalHostMap(Object.entries(object(raw["hosts"], "hosts")).map(([name, path]) => [name, assertStorePath(path)])));
  if (Object.keys(hosts).length === 0) throw bad("names no host");
  if (!Array.isArray(raw["paths"]) || !Array.isArray(raw["omitted"])) throw bad("paths and omitted must be lists");
  const seen = new Set<string>();
  const unique = (path: string): string => {
    if (seen.has(path)) throw bad(`${path} is listed twice`);
    seen.add(path);
    return path;
  };
  const paths = raw["paths"].map((value, i): BundlePath => {
    const entry = object(value, `paths[${i}]`);
    return {
      storePath: unique(assertStorePath(entry["storePath"])),
      narHash: text(entry["narHash"], `paths[${i}].narHash`, HASH_TEXT),
      narSize: count(entry["narSize"], `paths[${i}].narSize`),
      narinfo: bundleFile(entry["narinfo"], `paths[${i}].narinfo`, NARINFO_NAME),
      nar: bundleFile(entry["nar"], `paths[${i}].nar`, NAR_NAME),
    };
  });
  const omitted = raw["omitted"].map((value, i): OmittedPath => {
    const entry = object(value, `omitted[${i}]`);
    return {
      storePath: unique(assertStorePath(entry["storePath"])),
      narHash: text(entry["narHash"], `omitted[${i}].narHash`, HASH_TEXT),
      narSize: count(entry["narSize"], `omitted[${i}].narSize`),
    };
  });
  for (const [host, path] of Object.entries(hosts)) if (!seen.has(path)) throw bad(`the system of ${host} is not in the closure listing`);
  const since = raw["since"] === null || raw["since"] === undefined ? null : object(raw["since"], "since");
  const site = raw["site"] === null || raw["site"] === undefined ? null : assertHostName(raw["site"]);
  const expiresAt = raw["expiresAt"] === null || raw["expiresAt"] === undefined ? null : text(raw["expiresAt"], "expiresAt", ISO_TIME);
  if (expiresAt !== null && Number.isNaN(Date.parse(expiresAt))) throw bad("expiresAt is not a time");
  const intents = parseIntents(raw["intents"], hosts);
  return {
    format: BUNDLE_FORMAT,
    version,
    minorVersion: count(raw["minorVersion"] ?? 0, "minorVersion"),
    createdAt: text(raw["createdAt"], "createdAt", ISO_TIME),
    sequence: count(raw["sequence"], "sequence"),
    hosts,
    nixCacheInfo: bundleFile(raw["nixCacheInfo"], "nixCacheInfo", /^nix-cache-info$/),
    paths,
    omitted,
    since: since && {
      inventorySha256: text(since["inventorySha256"], "since.inventorySha256", /^[0-9a-f]{64}$/),
      lastSequence: count(since["lastSequence"], "since.lastSequence"),
    },
    site,
    expiresAt,
    intents,
  };
}

function parseIntents(value: unknown, hosts: Record<string, string>): SignedIntent[] {
  if (value === null || value === undefined) return [];
  let intents: SignedIntent[];
  try {
    intents = signedIntentsFromJson(value, "intents");
  } catch (error) {
    throw bad((error as Error).message);
  }
  for (const signed of intents) {
    const host = readSignedIntent(signed).hostName;
    if (!(host in hosts)) throw bad(`an intent names ${host}, which the bundle has no system for`);
  }
  return intents;
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** What a manifest signature covers: a domain tag and the manifest's exact bytes, by hash. */
export function manifestSignedMessage(manifestBytes: Uint8Array): string {
  return `ferry-bundle-manifest-v${BUNDLE_VERSION};${sha256Hex(manifestBytes)}`;
}

/**
 * What a version 2 head signature covers: its own domain tag, so that a
 * manifest signature can never pass for a head signature or the reverse,
 * whatever bytes the two files hold.
 */
export function headSignedMessage(headBytes: Uint8Array): string {
  return `ferry-bundle-head-v${BUNDLE_VERSION_STREAMED};${sha256Hex(headBytes)}`;
}

/** What a signature file signs: a manifest (manifest.sig) or a version 2 head (head.sig). */
export type SignedDocument = "manifest" | "head";

const SIGNED_MESSAGE: Record<SignedDocument, (bytes: Uint8Array) => string> = { manifest: manifestSignedMessage, head: headSignedMessage };
const SIGNATURE_FILE_NAME: Record<SignedDocument, string> = { manifest: SIGNATURE_FILE, head: HEAD_SIGNATURE_FILE };

/** manifest.sig (or head.sig): one Nix-style `KEYNAME:BASE64` signature per line. */
export function signManifest(bytes: Uint8Array, keys: readonly SigningKey[], document: SignedDocument = "manifest"): string {
  return keys.map((key) => `${signText(key, SIGNED_MESSAGE[document](bytes))}\n`).join("");
}

/** The name of the trusted key that signed the manifest (or head); E_BUNDLE_SIGNATURE otherwise. */
export function verifyManifestSignature(
  bytes: Uint8Array,
  signatureFile: string,
  trusted: ReadonlyMap<string, PublicKey>,
  document: SignedDocument = "manifest",
): string {
  const fileName = SIGNATURE_FILE_NAME[document];
  if (trusted.size === 0) throw new FerryError("E_BUNDLE_SIGNATURE", `no trusted key to check the bundle's ${document} signature against`);
  // Strict form, so that not even the unsigned signature file can be altered unnoticed.
  if (!/^([A-Za-z0-9._+-]{1,100}:[A-Za-z0-9+/]{86}==\n){1,16}$/.test(signatureFile)) {
    throw new FerryError("E_BUNDLE_SIGNATURE", `${fileName} is malformed: expected lines of KEYNAME:BASE64 ed25519 signatures`);
  }
  const signatures = signatureFile.split("\n").filter(Boolean);
  const signer = findValidSignature(signatures, SIGNED_MESSAGE[document](bytes), trusted);
  if (!signer) {
    const names = signatures.map((line) => line.slice(0, Math.max(0, line.indexOf(":")))).join(", ") || "none";
    throw new FerryError(
      "E_BUNDLE_SIGNATURE",
      `the ${document} is not signed by a trusted key (signed by: ${names}; trusted: ${[...trusted.keys()].join(", ")})`,
    );
  }
  return signer;
}

/** Every store path the manifest says the hosts' closures consist of. */
export function closureOf(manifest: BundleManifest): Set<string> {
  return new Set([...manifest.paths.map((entry) => entry.storePath), ...manifest.omitted.map((entry) => entry.storePath)]);
}

/** A version 2 bundle's head (HEAD_FILE). */
export interface BundleHead {
  format: typeof HEAD_FORMAT;
  version: number;
  sequence: number;
  paths: { storePath: string; narSize: number }[];
}

export function parseBundleHead(bytes: Buffer): BundleHead {
  let raw: Record<string, unknown>;
  try {
    raw = object(JSON.parse(bytes.toString("utf8")), "the head");
  } catch (error) {
    throw error instanceof FerryError ? error : bad(`head: not JSON: ${(error as Error).message}`);
  }
  if (raw["format"] !== HEAD_FORMAT || raw["version"] !== BUNDLE_VERSION_STREAMED) throw bad("head: not a version 2 bundle head");
  if (!Array.isArray(raw["paths"])) throw bad("head: paths must be a list");
  return {
    format: HEAD_FORMAT,
    version: BUNDLE_VERSION_STREAMED,
    sequence: count(raw["sequence"], "head.sequence"),
    paths: raw["paths"].map((value, i) => {
      const entry = object(value, `head.paths[${i}]`);
      return { storePath: assertStorePath(entry["storePath"]), narSize: count(entry["narSize"], `head.paths[${i}].narSize`) };
    }),
  };
}
