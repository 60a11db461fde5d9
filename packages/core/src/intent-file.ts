import type { SignedIntent } from "@ferry/protocol/agent-channel";
import { FerryError } from "./errors.js";
import { MAX_INTENT_SIGNATURES, readSignedIntent } from "./intent.js";

/**
 * Signed intents as JSON, in the files `ferry intent sign -o FILE` writes and
 * `ferry deploy --intents FILE` reads, and in bundle manifests:
 *
 *   {"format": "ferry-intents", "version": 1,
 *    "intents": [{"intent": "ferry-intent-v1;…", "signatures": ["KEY:BASE64"]}]}
 *
 * Reading checks the shape and the intent text; signatures are checked by
 * the host only.
 */
export const INTENTS_FILE_FORMAT = "ferry-intents";
export const INTENTS_FILE_VERSION = 1;
/** A file or manifest names at most this many intents. */
export const MAX_INTENTS = 100_000;

function malformed(message: string): FerryError {
  return new FerryError("E_INTENT_MALFORMED", message);
}

/** One `{"intent", "signatures"}` object, checked. */
export function signedIntentFromJson(value: unknown, what: string): SignedIntent {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw malformed(`${what} must be an object`);
  const raw = value as Record<string, unknown>;
  const signatures = raw["signatures"];
  if (typeof raw["intent"] !== "string") throw malformed(`${what}.intent must be a string`);
  if (!Array.isArray(signatures) || signatures.length > MAX_INTENT_SIGNATURES || !signatures.every((sig) => typeof sig === "string")) {
    throw malformed(`${what}.signatures must be a list of at most ${MAX_INTENT_SIGNATURES} strings`);
  }
  const signed: SignedIntent = { intent: raw["intent"], signatures: signatures as string[] };
  try {
    readSignedIntent(signed);
  } catch (error) {
    throw malformed(`${what}: ${(error as Error).message}`);
  }
  return signed;
}

export function signedIntentToJson(signed: SignedIntent): { intent: string; signatures: string[] } {
  return { intent: signed.intent, signatures: [...signed.signatures] };
}

/** A list of intents as JSON (bundle manifests, files): each checked, at most one per host. */
export function signedIntentsFromJson(value: unknown, what: string): SignedIntent[] {
  if (!Array.isArray(value)) throw malformed(`${what} must be a list`);
  if (value.length > MAX_INTENTS) throw malformed(`${what} holds more than ${MAX_INTENTS} intents`);
  const intents = value.map((entry, i) => signedIntentFromJson(entry, `${what}[${i}]`));
  intentsByHost(intents);
  return intents;
}

export function formatIntentsFile(intents: readonly SignedIntent[]): string {
  return `${JSON.stringify({ format: INTENTS_FILE_FORMAT, version: INTENTS_FILE_VERSION, intents: intents.map(signedIntentToJson) }, null, 2)}\n`;
}

export function parseIntentsFile(text: string, source: string): SignedIntent[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw malformed(`${source} is not JSON: ${(error as Error).message}`);
  }
  const file = raw as { format?: unknown; version?: unknown; intents?: unknown } | null;
  if (typeof file !== "object" || file === null || file.format !== INTENTS_FILE_FORMAT) {
    throw malformed(`${source} is not a Ferry intents file (format ${JSON.stringify(file?.format ?? null)})`);
  }
  if (file.version !== INTENTS_FILE_VERSION) throw malformed(`${source}: intents file version ${JSON.stringify(file.version)}; this Ferry reads 1`);
  const intents = signedIntentsFromJson(file.intents, `${source}: intents`);
  if (intents.length === 0) throw malformed(`${source} holds no intent`);
  return intents;
}

/** Intents keyed by the host each one names; two for one host are refused. */
export function intentsByHost(intents: readonly SignedIntent[]): Map<string, SignedIntent> {
  const byHost = new Map<string, SignedIntent>();
  for (const signed of intents) {
    const host = readSignedIntent(signed).hostName;
    if (byHost.has(host)) throw new FerryError("E_BAD_ARGUMENT", `two intents name host ${host}; give one per host`);
    byHost.set(host, signed);
  }
  return byHost;
}
