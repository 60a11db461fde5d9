import { CONNECTION_ENV, CONNECTION_FLAGS, EXAMPLE_PATH, INTENT_FLAGS, MODE_FLAG } from "./common.js";
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
      description: "sign every path of the closure with this secret key first (ferry keys generate); pushing again adds signatures",
      defaultText: "$FERRY_SIGNING_KEY_FILE",
    },
    unsigned: { type: "boolean", default: false, description: "push without signing (hosts refuse such paths until they are pushed again with a key)" },
    jobs: { type: "string", value: "N", default: "4", description: "uploads at once, each starting once the paths it refers to are in the cache (1-64)" },
    "cache-url": {
      type: "string",
      value: "URL",
      description: "upload here instead",
      defaultText: "$FERRY_CACHE_URL, else the cache the controller advertises",
    },
    ...CONNECTION_FLAGS,
  },
  env: [...CONNECTION_ENV, "FERRY_CACHE_URL", "FERRY_SIGNING_KEY_FILE"],
  example: `ferry cache push ${EXAMPLE_PATH} --signing-key-file keys/ci-1.secret`,
  notes:
    "Without a key (flag or variable) the push is refused (E_PUSH_UNSIGNED) unless --unsigned is given. A path the cache holds with other contents stops the push before anything is uploaded (E_CACHE_CONFLICT).",
} as const satisfies VerbSpec;

export const CACHE_RM = {
  path: ["cache", "rm"],
  summary: "remove paths from the controller's cache that no host's desired, current or previous system needs",
  section: "operator",
  positionals: { synopsis: "STOREPATH...", min: 1 },
  flags: CONNECTION_FLAGS,
  env: CONNECTION_ENV,
  example: `ferry cache rm ${EXAMPLE_PATH}`,
  notes: "Refused (E_CACHE_PATH_IN_USE, nothing removed) while a host or an active rollout needs a path through its closure.",
} as const satisfies VerbSpec;

export const CACHE_GC = {
  path: ["cache", "gc"],
  summary: "delete cached paths that no host, recent rollout or kept bundle needs, once they are old enough",
  section: "operator",
  flags: {
    "dry-run": { type: "boolean", default: false, description: "report what would be deleted, delete nothing" },
    "min-age": {
      type: "string",
      value: "DURATION",
      description: "keep unneeded paths until their narinfo is this old (file mtime); also how long a finished rollout's systems stay",
      defaultText: "the controller's --cache-gc-min-age, 7d",
    },
    "keep-bundles": {
      type: "string",
      value: "N",
      description: "the newest N imported bundles keep their hosts' systems",
      defaultText: "the controller's --cache-gc-keep-bundles, 3",
    },
    ...CONNECTION_FLAGS,
  },
  env: CONNECTION_ENV,
  example: "ferry cache gc --dry-run --min-age 30d",
  notes:
    "Kept: every host's desired, current and previous system, the systems of running rollouts and of rollouts finished within the minimum age, " +
    "those of the newest kept bundles, and everything they refer to; also any path being uploaded or downloaded, or whose narinfo was served in the last 15 minutes. " +
    "NAR files no narinfo names (an interrupted push) go once older than the minimum age. Needs the admin scope.",
} as const satisfies VerbSpec;

export const DEPLOY = {
  path: ["deploy"],
  summary: "record the system each host should run; with --wait, follow the hosts until they settle",
  section: "operator",
  positionals: { synopsis: "HOST=STOREPATH...", min: 0 },
  flags: {
    wait: { type: "boolean", default: false, description: "wait until every host activated its system, failed or rolled back" },
    timeout: { type: "string", value: "SECONDS", default: "900", description: "with --wait, give up waiting after this long (the deployment goes on)" },
    mode: MODE_FLAG,
    "ignore-windows": { type: "boolean", default: false, description: "activate now even on hosts whose maintenance window is closed (the result names them)" },
    "allow-unsigned": {
      type: "boolean",
      default: false,
      description: "record it although the cache holds no signature for some closure path (hosts still check their own keys)",
    },
    ...INTENT_FLAGS,
    ...CONNECTION_FLAGS,
  },
  env: [...CONNECTION_ENV, "FERRY_INTENT_KEY_FILE"],
  example: `ferry deploy web-1=${EXAMPLE_PATH} --wait`,
  notes:
    "A host whose maintenance windows are all closed fetches now and activates when one opens. Exit status with --wait: 0 when every host runs its new system, 1 when one failed or rolled back, 3 when hosts wait for their window.",
} as const satisfies VerbSpec;

export const DRY_ACTIVATE = {
  path: ["dry-activate"],
  summary: "ask a host what switching to a system would change, without switching",
  section: "operator",
  positionals: { synopsis: "HOST=STOREPATH", min: 1, max: 1 },
  flags: {
    timeout: { type: "string", value: "SECONDS", default: "600", description: "give up after this long (the host fetches the closure first)" },
    ...INTENT_FLAGS,
    ...CONNECTION_FLAGS,
  },
  env: [...CONNECTION_ENV, "FERRY_INTENT_KEY_FILE"],
  example: `ferry dry-activate web-1=${EXAMPLE_PATH}`,
} as const satisfies VerbSpec;
