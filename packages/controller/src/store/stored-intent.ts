import { signedIntentToJson } from "@ferry/core";
import type { SignedIntent } from "@ferry/protocol";

/** A signed intent as a column value: its JSON, or "" for none. */
export function encodeStoredIntent(intent: SignedIntent | undefined): string {
  return intent ? JSON.stringify(signedIntentToJson(intent)) : "";
}

/**
 * Reads a stored intent back without judging it: the host checks every
 * intent it gets, so a damaged value only makes the host refuse.
 */
export function decodeStoredIntent(text: string): SignedIntent | undefined {
  if (text === "") return undefined;
  try {
    const raw = JSON.parse(text) as { intent?: unknown; signatures?: unknown };
    const signatures = Array.isArray(raw.signatures) ? raw.signatures.filter((sig): sig is string => typeof sig === "string") : [];
    return { intent: typeof raw.intent === "string" ? raw.intent : "", signatures };
  } catch {
    return { intent: "", signatures: [] };
  }
}
