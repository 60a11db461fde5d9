import { readFileSync } from "node:fs";
import {
  FerryError,
  assertHostName,
  assertStorePath,
  formatIntentsFile,
  parsePublicKeys,
  readSecretKeyFile,
  readSignedIntent,
  verifyIntent,
  writeFileAtomic,
  type DeployIntent,
} from "@ferry/core";
import { parseVerb } from "../args.js";
import { readEnv } from "../spec/env.js";
import { VERBS } from "../spec/index.js";
import { INTENT_EXPIRY, intentExpiryMs, parseIntentMode, readIntentsFile, signTargets, type IntentTargetInput } from "../intents.js";
import { createOutput, table } from "../output.js";

/** `ferry intent sign|show`: deploy intents signed where the key lives (a CI job, an operator's machine), submitted elsewhere. */
export async function intentCommand(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  switch (verb) {
    case "sign":
      return sign(rest);
    case "show":
      return show(rest);
    default:
      throw new FerryError("E_BAD_ARGUMENT", `unknown verb 'intent ${verb ?? ""}': use sign or show`);
  }
}

function target(argument: string): IntentTargetInput {
  const eq = argument.indexOf("=");
  if (eq <= 0) throw new FerryError("E_BAD_ARGUMENT", `expected HOST=STOREPATH, got ${JSON.stringify(argument)}`);
  return { hostName: assertHostName(argument.slice(0, eq)), storePath: assertStorePath(argument.slice(eq + 1)) };
}

/** `{"hosts": {"HOST": "/nix/store/…"}}`, the manifest CI writes for rollouts. */
function manifestTargets(file: string, only: readonly string[]): IntentTargetInput[] {
  let hosts: unknown;
  try {
    hosts = (JSON.parse(readFileSync(file, "utf8")) as { hosts?: unknown } | null)?.hosts;
  } catch (error) {
    throw new FerryError("E_BAD_ARGUMENT", `cannot read manifest ${file}: ${(error as Error).message}`);
  }
  if (typeof hosts !== "object" || hosts === null || Array.isArray(hosts))
    throw new FerryError("E_BAD_ARGUMENT", `${file} must look like {"hosts": {"HOST": "/nix/store/…"}}`);
  const all = Object.entries(hosts as Record<string, unknown>).map(([host, path]) => target(`${host}=${String(path)}`));
  if (only.length === 0) return all;
  const missing = only.filter((name) => !all.some((entry) => entry.hostName === name));
  if (missing.length > 0) throw new FerryError("E_BAD_ARGUMENT", `${file} has no store path for ${missing.join(", ")}`);
  return all.filter((entry) => only.includes(entry.hostName));
}

async function sign(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS["intent sign"], args);
  const keyFile = values["key-file"] ?? readEnv("FERRY_INTENT_KEY_FILE");
  if (!keyFile) throw new FerryError("E_BAD_ARGUMENT", "name the intent key: --key-file KEY (or FERRY_INTENT_KEY_FILE)");
  const only = values.hosts ? values.hosts.split(",").filter(Boolean).map(assertHostName) : [];
  const targets = [...positionals.map(target), ...(values.manifest ? manifestTargets(values.manifest, only) : [])];
  if (targets.length === 0) {
    throw new FerryError(
      "E_BAD_ARGUMENT",
      "usage: ferry intent sign HOST=STOREPATH... [--manifest FILE [--hosts A,B]] [--mode MODE] --key-file KEY [--expires-in DURATION] [--version N] [-o FILE]",
    );
  }
  const mode = parseIntentMode(values.mode);
  const version = values.version === undefined ? undefined : Number(values.version);
  if (version !== undefined && !(Number.isSafeInteger(version) && version > 0)) throw new FerryError("E_BAD_ARGUMENT", "--version expects a positive integer");
  const key = readSecretKeyFile(keyFile);
  const expiresInMs = intentExpiryMs(
    { "intent-expires-in": values["expires-in"] },
    mode === "dry-activate" ? INTENT_EXPIRY.dryActivate : INTENT_EXPIRY.deploy,
    "--expires-in",
  );
  const intents = signTargets(targets, mode, key, expiresInMs, Date.now(), version);
  const file = formatIntentsFile(intents);
  if (!values.output || values.output === "-") {
    process.stdout.write(file);
    return 0;
  }
  writeFileAtomic(values.output, file, 0o644);
  const shown = intents.map((signed) => readSignedIntent(signed));
  createOutput(values.json).result({ file: values.output, signer: key.name, publicKey: key.publicKey, intents: shown.map(intentJson) }, () =>
    [`wrote ${values.output}: ${intents.length} intent(s), mode ${mode}, signed by ${key.name}`, intentTable(shown)].join("\n"),
  );
  return 0;
}

/** Prints the intents of a file; with --trusted-key, checks each signature as a host would. */
async function show(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS["intent show"], args);
  const trusted = values["trusted-key"] ? parsePublicKeys(values["trusted-key"]) : undefined;
  const rows = readIntentsFile(positionals[0] as string).map((signed) => {
    const intent = readSignedIntent(signed);
    const signers = signed.signatures.map((signature) => signature.slice(0, signature.indexOf(":")));
    let valid: boolean | null = null;
    if (trusted) {
      try {
        verifyIntent(signed, trusted);
        valid = true;
      } catch {
        valid = false;
      }
    }
    return { ...intentJson(intent), signers, valid };
  });
  createOutput(values.json).result({ intents: rows }, () =>
    table(
      ["HOST", "MODE", "VERSION", "EXPIRES", "SIGNED BY", ...(trusted ? ["VALID"] : []), "STORE PATH"],
      rows.map((row) => [
        row.host,
        row.mode,
        String(row.version),
        row.expiresAt,
        row.signers.join(","),
        ...(trusted ? [row.valid ? "yes" : "NO"] : []),
        row.storePath,
      ]),
    ),
  );
  return rows.every((row) => row.valid !== false) ? 0 : 1;
}

function intentJson(intent: DeployIntent) {
  return {
    host: intent.hostName,
    storePath: intent.storePath,
    mode: intent.mode,
    version: intent.version,
    issuedAt: new Date(intent.issuedAtMs).toISOString(),
    expiresAt: new Date(intent.expiresAtMs).toISOString(),
  };
}

function intentTable(intents: DeployIntent[]): string {
  return table(
    ["HOST", "VERSION", "EXPIRES", "STORE PATH"],
    intents.map((intent) => [intent.hostName, String(intent.version), new Date(intent.expiresAtMs).toISOString(), intent.storePath]),
  );
}
