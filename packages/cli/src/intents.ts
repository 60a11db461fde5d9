import { readFileSync } from "node:fs";
import {
  FerryError,
  createIntent,
  isIntentMode,
  parseIntentsFile,
  readSecretKeyFile,
  readSignedIntent,
  signIntent,
  type IntentMode,
  type Mode,
  type SigningKey,
} from "@ferry/core";
import type { SignedIntent } from "@ferry/protocol";
import { parseDuration } from "./units.js";
import { readEnv } from "./spec/env.js";

/**
 * Signing deploy intents on the operator's or CI's side: the flags the
 * deploy, rollout, dry-activate and bundle verbs share, and the intents file.
 */

/** How long a signed intent stays valid when nothing else is said, by verb. */
export const INTENT_EXPIRY = { deploy: "7d", rollout: "7d", dryActivate: "1h", bundle: "30d" } as const;

export interface IntentFlags {
  "intent-key-file"?: string | undefined;
  "intent-expires-in"?: string | undefined;
  intents?: string | undefined;
}

/**
 * The intent key: --intent-key-file, else FERRY_INTENT_KEY_FILE; undefined
 * means "do not sign". Pre-signed --intents win over the environment, not
 * over the flag.
 */
export function intentKey(flags: IntentFlags): SigningKey | undefined {
  if (flags.intents !== undefined) {
    if (flags["intent-key-file"] !== undefined) throw new FerryError("E_BAD_ARGUMENT", "--intents (pre-signed) and --intent-key-file exclude each other");
    return undefined;
  }
  const file = flags["intent-key-file"] ?? readEnv("FERRY_INTENT_KEY_FILE");
  return file === undefined ? undefined : readSecretKeyFile(file);
}

export function intentExpiryMs(flags: IntentFlags, fallback: string, flag = "--intent-expires-in"): number {
  return parseDuration(flags["intent-expires-in"] ?? fallback, flag);
}

/** A mode for an intent: a deploy mode, `default` (no --mode: the host's own strategy) or `dry-activate`. */
export function parseIntentMode(text: string | undefined): IntentMode {
  if (text === undefined || text === "") return "default";
  if (!isIntentMode(text))
    throw new FerryError("E_BAD_ARGUMENT", `--mode must be trial, switch, test, boot, default or dry-activate, got ${JSON.stringify(text)}`);
  return text;
}

export interface IntentTargetInput {
  hostName: string;
  storePath: string;
}

/** One intent per target, all with the same mode, time and version (versions are per host; by default the signing time). */
export function signTargets(
  targets: readonly IntentTargetInput[],
  mode: IntentMode,
  key: SigningKey,
  expiresInMs: number,
  nowMs = Date.now(),
  version?: number,
): SignedIntent[] {
  return targets.map((target) => signIntent(createIntent({ ...target, mode, nowMs, expiresInMs, ...(version === undefined ? {} : { version }) }), [key]));
}

export function readIntentsFile(file: string): SignedIntent[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new FerryError("E_BAD_ARGUMENT", `cannot read intents file ${file}: ${(error as Error).message}`);
  }
  return parseIntentsFile(text, file);
}

/**
 * Pre-signed intents for a deploy: the targets they name (or that the
 * arguments name, which must then match them one for one) and their common
 * mode, which --mode, when given, must agree with.
 */
export function deployFromIntents(
  intents: readonly SignedIntent[],
  given: readonly IntentTargetInput[],
  mode: Mode | undefined,
): { targets: (IntentTargetInput & { intent: SignedIntent })[]; mode: IntentMode } {
  const targets = intents.map((intent) => ({ ...readSignedIntent(intent), intent }));
  const modes = [...new Set(targets.map((target) => target.mode))];
  if (modes.length !== 1) throw new FerryError("E_BAD_ARGUMENT", `the intents name several modes (${modes.join(", ")}); one deploy has one mode`);
  const common = modes[0] as IntentMode;
  if (common === "dry-activate") throw new FerryError("E_BAD_ARGUMENT", "these are dry-activate intents: use them with ferry dry-activate --intents");
  if (mode !== undefined && mode !== common) throw new FerryError("E_INTENT_MODE_MISMATCH", `--mode ${mode}, but the intents were signed for mode ${common}`);
  if (given.length > 0) {
    const key = (target: IntentTargetInput): string => `${target.hostName}=${target.storePath}`;
    const signed = new Set(targets.map(key));
    const unsigned = given.filter((target) => !signed.has(key(target)));
    if (unsigned.length > 0 || given.length !== targets.length) {
      throw new FerryError(
        "E_BAD_ARGUMENT",
        `with --intents, HOST=STOREPATH arguments must match the intents one for one${unsigned.length > 0 ? `; no intent for ${unsigned.map(key).join(", ")}` : ""}`,
      );
    }
  }
  return { targets: targets.map(({ hostName, storePath, intent }) => ({ hostName, storePath, intent })), mode: common };
}
