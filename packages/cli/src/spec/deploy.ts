import { CONNECTION_ENV, CONNECTION_FLAGS, EXAMPLE_PATH, MODE_FLAG } from "./common.js";
import type { VerbSpec } from "./types.js";

export const CACHE_PUSH = {
  path: ["cache", "push"],
  summary: "upload store paths and their closures to the controller's binary cache",
  section: "operator",
  positionals: { synopsis: "STOREPATH...", min: 1, complete: "file" },
  flags: {
    "signing-key-file": {
      type: "string",
      value: "FILE",
      complete: "file",
      description: "sign every path of the closure with this secret key first (ferry keys generate)",
    },
    "cache-url": {
      type: "string",
      value: "URL",
      description: "upload here instead",
      defaultText: "$FERRY_CACHE_URL, else the cache the controller advertises",
    },
    ...CONNECTION_FLAGS,
  },
  env: [...CONNECTION_ENV, "FERRY_CACHE_URL"],
  example: `ferry cache push ${EXAMPLE_PATH} --signing-key-file keys/ci-1.secret`,
} as const satisfies VerbSpec;

export const DEPLOY = {
  path: ["deploy"],
  summary: "record the system each host should run; with --wait, follow the hosts until they settle",
  section: "operator",
  positionals: { synopsis: "HOST=STOREPATH...", min: 1 },
  flags: {
    wait: { type: "boolean", default: false, description: "wait until every host activated its system, failed or rolled back" },
    timeout: { type: "string", value: "SECONDS", default: "900", description: "with --wait, give up waiting after this long (the deployment goes on)" },
    mode: MODE_FLAG,
    ...CONNECTION_FLAGS,
  },
  env: CONNECTION_ENV,
  example: `ferry deploy web-1=${EXAMPLE_PATH} --wait`,
  notes: "Exit status with --wait: 0 when every host runs its new system, 1 when one failed or rolled back.",
} as const satisfies VerbSpec;

export const DRY_ACTIVATE = {
  path: ["dry-activate"],
  summary: "ask a host what switching to a system would change, without switching",
  section: "operator",
  positionals: { synopsis: "HOST=STOREPATH", min: 1, max: 1 },
  flags: {
    timeout: { type: "string", value: "SECONDS", default: "600", description: "give up after this long (the host fetches the closure first)" },
    ...CONNECTION_FLAGS,
  },
  env: CONNECTION_ENV,
  example: `ferry dry-activate web-1=${EXAMPLE_PATH}`,
} as const satisfies VerbSpec;
