import { ActivationMode, type SignedIntent } from "@ferry/protocol/agent-channel";
import { FerryError } from "./errors.js";
import { findValidSignature, signText, type PublicKey, type SigningKey } from "./bundle/keys.js";
import { MODES, modeFromWire, modeToWire, type Mode } from "./modes.js";
import { assertHostName, isStorePath } from "./validate.js";

/**
 * A deploy intent: "host H may run store path P in mode M", numbered by the
 * signer (CI or an operator) and valid for a while. The controller only
 * relays it; the host checks it against its own intentPublicKeys. The
 * signature covers one canonical line of text, in the manner of Nix's path
 * fingerprints:
 *
 *   ferry-intent-v1;HOST;STORE_PATH;MODE;VERSION;ISSUED_AT_MS;EXPIRES_AT_MS
 *
 * HOST passes assertHostName, STORE_PATH assertStorePath (neither can hold a
 * ';'), MODE is one of INTENT_MODES, the three numbers are decimal integers
 * without sign or leading zeros (milliseconds since the epoch for the two
 * times), VERSION ≥ 1 and ISSUED_AT_MS < EXPIRES_AT_MS. A text that does not
 * come back byte for byte from its own parse is refused, so there is exactly
 * one encoding of each intent.
 */
export const INTENT_TAG = "ferry-intent-v1";

/**
 * The modes of NixOS activation, plus `default` (the host's own configured
 * strategy: a deployment that names no mode) and `dry-activate` (what the
 * host's `switch-to-configuration dry-activate` would do; never switches).
 */
export const INTENT_MODES = [...MODES, "default", "dry-activate"] as const;
export type IntentMode = (typeof INTENT_MODES)[number];

export interface DeployIntent {
  hostName: string;
  storePath: string;
  mode: IntentMode;
  /** Chosen by the signer, strictly increasing per host; by default the signing time in ms. */
  version: number;
  issuedAtMs: number;
  expiresAtMs: number;
}

export const MAX_INTENT_LENGTH = 1024;
export const MAX_INTENT_SIGNATURES = 8;
/** A version or issue time further ahead of the checking clock than this is refused. */
export const INTENT_HORIZON_MS = 30 * 86_400_000;
/** Clock difference tolerated between the signer and the host for `issuedAt`. */
export const INTENT_CLOCK_SKEW_MS = 5 * 60_000;

const DECIMAL = /^(0|[1-9][0-9]{0,15})$/;
const SIGNATURE = /^[A-Za-z0-9._+-]{1,100}:[A-Za-z0-9+/]{86}==$/;

function malformed(message: string): FerryError {
  return new FerryError("E_INTENT_MALFORMED", `intent: ${message}`);
}

function isHostName(value: string): boolean {
  try {
    assertHostName(value);
    return true;
  } catch {
    return false;
  }
}

export function isIntentMode(value: string): value is IntentMode {
  return (INTENT_MODES as readonly string[]).includes(value);
}

function number(text: string | undefined, what: string): number {
  if (text === undefined || !DECIMAL.test(text)) throw malformed(`${what} must be a decimal integer without leading zeros`);
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw malformed(`${what} is too large`);
  return value;
}

function checkFields(intent: DeployIntent): void {
  if (!isHostName(intent.hostName)) throw malformed(`bad host name ${JSON.stringify(intent.hostName.slice(0, 260))}`);
  if (!isStorePath(intent.storePath)) throw malformed(`bad store path ${JSON.stringify(String(intent.storePath).slice(0, 300))}`);
  if (!isIntentMode(intent.mode)) throw malformed(`unknown mode ${JSON.stringify(String(intent.mode).slice(0, 40))}`);
  for (const [what, value] of [
    ["version", intent.version],
    ["issued-at", intent.issuedAtMs],
    ["expires-at", intent.expiresAtMs],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 0) throw malformed(`${what} must be a non-negative integer`);
  }
  if (intent.version < 1) throw malformed("version must be at least 1");
  if (intent.expiresAtMs <= intent.issuedAtMs) throw malformed("it expires before it was issued");
}

/** The canonical text of an intent: what is signed, stored and relayed. */
export function formatIntent(intent: DeployIntent): string {
  checkFields(intent);
  return [INTENT_TAG, intent.hostName, intent.storePath, intent.mode, intent.version, intent.issuedAtMs, intent.expiresAtMs].join(";");
}

/** Parses canonical intent text, refusing anything else (E_INTENT_MALFORMED). */
export function parseIntent(text: string): DeployIntent {
  if (typeof text !== "string" || text.length === 0) throw malformed("empty");
  if (text.length > MAX_INTENT_LENGTH) throw malformed(`longer than ${MAX_INTENT_LENGTH} characters`);
  const fields = text.split(";");
  if (fields[0] !== INTENT_TAG) throw malformed(`does not start with ${INTENT_TAG}`);
  if (fields.length !== 7) throw malformed(`expected 7 ';'-separated fields, found ${fields.length}`);
  const [, hostName, storePath, mode] = fields as [string, string, string, string];
  const intent: DeployIntent = {
    hostName,
    storePath,
    mode: mode as IntentMode,
    version: number(fields[4], "version"),
    issuedAtMs: number(fields[5], "issued-at"),
    expiresAtMs: number(fields[6], "expires-at"),
  };
  checkFields(intent);
  // Belt and braces: one intent, one text.
  if (formatIntent(intent) !== text) throw malformed("not in canonical form");
  return intent;
}

export interface NewIntentOptions {
  hostName: string;
  storePath: string;
  mode: IntentMode;
  nowMs: number;
  expiresInMs: number;
  /** Defaults to nowMs: monotonic as long as signers' clocks are. */
  version?: number;
}

export function createIntent(options: NewIntentOptions): DeployIntent {
  if (!(options.expiresInMs > 0)) throw new FerryError("E_BAD_ARGUMENT", "an intent must expire after it is issued");
  const intent: DeployIntent = {
    hostName: options.hostName,
    storePath: options.storePath,
    mode: options.mode,
    version: options.version ?? options.nowMs,
    issuedAtMs: options.nowMs,
    expiresAtMs: options.nowMs + Math.round(options.expiresInMs),
  };
  formatIntent(intent);
  return intent;
}

export function signIntent(intent: DeployIntent, keys: readonly SigningKey[]): SignedIntent {
  if (keys.length === 0) throw new FerryError("E_BAD_ARGUMENT", "an intent needs at least one signing key");
  const text = formatIntent(intent);
  return { intent: text, signatures: keys.map((key) => signText(key, text)) };
}

/** Parses the intent of a signed intent without checking its signatures (the controller's view). */
export function readSignedIntent(signed: SignedIntent): DeployIntent {
  if (signed.signatures.length > MAX_INTENT_SIGNATURES) throw malformed(`more than ${MAX_INTENT_SIGNATURES} signatures`);
  if (!signed.signatures.every((signature) => SIGNATURE.test(signature))) throw malformed("a signature is not KEYNAME:BASE64 of 64 bytes");
  return parseIntent(signed.intent);
}

/**
 * The intent, if one of its signatures is by a trusted key over its exact
 * text; E_INTENT_MALFORMED or E_INTENT_SIGNATURE otherwise.
 */
export function verifyIntent(signed: SignedIntent, trusted: ReadonlyMap<string, PublicKey>): { intent: DeployIntent; signer: string } {
  const intent = readSignedIntent(signed);
  if (trusted.size === 0) throw new FerryError("E_INTENT_SIGNATURE", "the intent is signed, but this host trusts no intent key (intentPublicKeys is empty)");
  const signer = findValidSignature(signed.signatures, signed.intent, trusted);
  if (!signer) {
    const names = signed.signatures.map((signature) => signature.slice(0, signature.indexOf(":"))).join(", ") || "nobody";
    throw new FerryError(
      "E_INTENT_SIGNATURE",
      `the intent for ${intent.hostName} (version ${intent.version}) carries no valid signature by a trusted key (signed by: ${names}; trusted: ${[...trusted.keys()].join(", ")})`,
    );
  }
  return { intent, signer };
}

/** The intent mode of a desired system's wire mode: unspecified is the host's `default`. */
export function intentModeOfWire(wire: ActivationMode): IntentMode {
  return modeFromWire(wire) ?? "default";
}

/** The wire mode a deployment must carry for an intent; a dry-activate intent deploys nothing. */
export function wireModeOfIntent(mode: IntentMode): ActivationMode {
  if (mode === "dry-activate") throw new FerryError("E_INTENT_MODE_MISMATCH", "a dry-activate intent cannot deploy a system");
  return mode === "default" ? ActivationMode.ACTIVATION_MODE_UNSPECIFIED : modeToWire(mode as Mode);
}

export interface IntentTarget {
  hostName: string;
  storePath: string;
  mode: IntentMode;
}

/** The intent is for exactly this host, path and mode (E_INTENT_WRONG_HOST, _PATH_MISMATCH, _MODE_MISMATCH). */
export function checkIntentTarget(intent: DeployIntent, target: IntentTarget): void {
  if (intent.hostName !== target.hostName) {
    throw new FerryError("E_INTENT_WRONG_HOST", `the intent (version ${intent.version}) was signed for ${intent.hostName}, not ${target.hostName}`);
  }
  if (intent.storePath !== target.storePath) {
    throw new FerryError("E_INTENT_PATH_MISMATCH", `the intent (version ${intent.version}) approves ${intent.storePath}, not ${target.storePath}`);
  }
  if (intent.mode !== target.mode) {
    throw new FerryError("E_INTENT_MODE_MISMATCH", `the intent (version ${intent.version}) approves mode ${intent.mode}, not ${target.mode}`);
  }
}

/** The intent is valid now, by this clock (E_INTENT_EXPIRED, E_INTENT_VERSION). */
export function checkIntentTime(intent: DeployIntent, nowMs: number): void {
  if (nowMs >= intent.expiresAtMs) {
    throw new FerryError("E_INTENT_EXPIRED", `the intent (version ${intent.version}) expired at ${new Date(intent.expiresAtMs).toISOString()}`);
  }
  if (intent.issuedAtMs > nowMs + INTENT_CLOCK_SKEW_MS) {
    throw new FerryError("E_INTENT_EXPIRED", `the intent (version ${intent.version}) is issued in the future (${new Date(intent.issuedAtMs).toISOString()})`);
  }
  if (intent.version > nowMs + INTENT_HORIZON_MS) {
    throw new FerryError("E_INTENT_VERSION", `the intent's version ${intent.version} is more than 30 days ahead of this clock`);
  }
}

/**
 * What a relay (the controller, the CLI) can check without the host's keys:
 * the intent is well formed, for exactly this target, and valid now. The host
 * checks all of it again, and the signature.
 */
export function checkRelayedIntent(signed: SignedIntent, target: IntentTarget, nowMs: number): DeployIntent {
  const intent = readSignedIntent(signed);
  checkIntentTarget(intent, target);
  checkIntentTime(intent, nowMs);
  return intent;
}

/** A short description for logs and results: "version V by KEY". */
export function describeIntent(intent: DeployIntent, signer?: string): string {
  return `version ${intent.version}${signer ? ` by ${signer}` : ""}, ${intent.mode}, expires ${new Date(intent.expiresAtMs).toISOString()}`;
}
