import { EXAMPLE_PATH, JSON_FLAG } from "./common.js";
import type { VerbSpec } from "./types.js";

export const INTENT_SIGN = {
  path: ["intent", "sign"],
  summary: "sign deploy intents where the key lives (CI), for ferry deploy/rollout start --intents FILE",
  section: "local",
  positionals: { synopsis: "[HOST=STOREPATH]...", min: 0 },
  flags: {
    manifest: { type: "string", value: "FILE", complete: "file", description: 'sign for the hosts of {"hosts": {"HOST": "/nix/store/…"}}' },
    hosts: { type: "string", value: "A,B", description: "with --manifest, only these hosts" },
    mode: {
      type: "string",
      value: "MODE",
      description: "trial, switch, test, boot, default (the host's own strategy) or dry-activate",
      defaultText: "default",
    },
    "key-file": { type: "string", value: "FILE", complete: "file", description: "the intent signing key", defaultText: "$FERRY_INTENT_KEY_FILE" },
    "expires-in": { type: "string", value: "DURATION", description: "how long the intents stay valid", defaultText: "7d (dry-activate: 1h)" },
    version: { type: "string", value: "N", description: "the intents' version; hosts refuse any below the highest they applied", defaultText: "now in ms" },
    output: { type: "string", short: "o", value: "FILE|-", complete: "file", description: "where to write the intents file", defaultText: "stdout" },
    ...JSON_FLAG,
  },
  env: ["FERRY_INTENT_KEY_FILE"],
  example: `ferry intent sign web-1=${EXAMPLE_PATH} --key-file keys/release-1.secret -o intents.json`,
} as const satisfies VerbSpec;

export const INTENT_SHOW = {
  path: ["intent", "show"],
  summary: "list the intents of a file; with --trusted-key, check their signatures as a host would",
  section: "local",
  positionals: { synopsis: "FILE", min: 1, max: 1, complete: "file" },
  flags: {
    "trusted-key": { type: "string", multiple: true, value: "NAME:BASE64", description: "a key the intents may be signed by (repeatable)" },
    ...JSON_FLAG,
  },
  env: [],
  example: "ferry intent show intents.json --trusted-key release-1:AbCd…=",
} as const satisfies VerbSpec;
