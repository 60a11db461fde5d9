import { CONNECTION_ENV, CONNECTION_FLAGS, INTENT_FLAGS, JSON_FLAG, MODE_FLAG } from "./common.js";
import { ROLLOUT_POLICY_FLAGS } from "./rollout.js";
import type { VerbSpec } from "./types.js";

const TRUSTED_KEY = {
  type: "string",
  multiple: true,
  value: "NAME:BASE64",
  description: "a public key the bundle's signature may come from (repeatable; adds to $FERRY_TRUSTED_KEYS)",
} as const;

export const BUNDLE_CREATE = {
  path: ["bundle", "create"],
  summary: "write one signed file holding hosts' systems and their closures, for an air-gapped site",
  section: "local",
  flags: {
    manifest: { type: "string", required: true, value: "FILE", complete: "file", description: 'the systems, as {"hosts": {"HOST": "/nix/store/…"}}' },
    output: { type: "string", short: "o", required: true, value: "FILE", complete: "file", description: "the bundle file to write" },
    "signing-key-file": {
      type: "string",
      value: "FILE",
      complete: "file",
      description: "secret key that signs the manifest and every path; required, here or in the environment",
      defaultText: "$FERRY_SIGNING_KEY_FILE",
    },
    since: {
      type: "string",
      value: "FILE",
      complete: "file",
      description: "leave out the paths of this site inventory (ferry site inventory): a delta bundle",
    },
    sequence: {
      type: "string",
      value: "N",
      description: "the bundle's sequence number; a site refuses one not above its last",
      defaultText: "the current time in ms",
    },
    site: { type: "string", value: "NAME", description: "the site the bundle is for: a site with a name refuses bundles for another, or naming none" },
    "expires-in": {
      type: "string",
      value: "DURATION",
      default: "30d",
      description: "after this long no site or host accepts the bundle (90s, 12h, 30d; never for no expiry)",
    },
    "work-dir": {
      type: "string",
      value: "DIR",
      complete: "directory",
      description: "scratch space for the NARs (format 1 only)",
      defaultText: "beside the output file",
    },
    format: {
      type: "string",
      value: "1|2",
      description: "2 streams from the store in one pass; 1 is for sites running a Ferry that reads only format 1",
      defaultText: "2",
    },
    "from-file-cache": {
      type: "string",
      value: "DIR",
      complete: "directory",
      description: "wrap a file cache Nix wrote (nix copy --to file://DIR) instead of reading the store; makes format 1",
    },
    "from-export": {
      type: "string",
      value: "FILE",
      complete: "file",
      description:
        "wrap a nix-store --export stream (- for standard input) instead of reading the store: each NAR is hashed here and the signature covers those hashes",
    },
    ...INTENT_FLAGS,
    "intent-mode": { type: "string", value: "MODE", description: "the mode the bundle's intents allow (as ferry intent sign --mode)", defaultText: "default" },
    ...JSON_FLAG,
  },
  env: ["FERRY_SIGNING_KEY_FILE", "FERRY_INTENT_KEY_FILE"],
  example: "ferry bundle create --manifest hosts.json -o site-a.ferry --signing-key-file keys/release-1.secret",
} as const satisfies VerbSpec;

const MANIFEST_FILE_FLAG = {
  type: "string",
  value: "FILE",
  complete: "file",
  description: "FILE is then a plain file cache tarball (tar -C DIR -cf FILE .), checked against this signed manifest (ferry bundle sign-cache)",
} as const;

export const BUNDLE_SIGN_CACHE = {
  path: ["bundle", "sign-cache"],
  summary: "write the signed manifest a site needs to import a file cache that travels on its own as a tarball",
  section: "local",
  positionals: { synopsis: "DIR", min: 1, max: 1, complete: "directory" },
  flags: {
    manifest: BUNDLE_CREATE.flags.manifest,
    output: { type: "string", short: "o", required: true, value: "OUT", complete: "file", description: "the signed manifest file to write" },
    "signing-key-file": BUNDLE_CREATE.flags["signing-key-file"],
    since: BUNDLE_CREATE.flags.since,
    sequence: BUNDLE_CREATE.flags.sequence,
    site: BUNDLE_CREATE.flags.site,
    "expires-in": BUNDLE_CREATE.flags["expires-in"],
    ...JSON_FLAG,
  },
  env: ["FERRY_SIGNING_KEY_FILE"],
  example: "ferry bundle sign-cache ./cache --manifest hosts.json -o cache.manifest --signing-key-file keys/release-1.secret",
} as const satisfies VerbSpec;

export const BUNDLE_VERIFY = {
  path: ["bundle", "verify"],
  summary: "check a bundle's two signature layers and every hash, without importing it",
  section: "local",
  positionals: { synopsis: "FILE", min: 1, max: 1, complete: "file" },
  flags: { "trusted-key": TRUSTED_KEY, "manifest-file": MANIFEST_FILE_FLAG, ...JSON_FLAG },
  env: ["FERRY_TRUSTED_KEYS"],
  example: "ferry bundle verify site-a.ferry --trusted-key release-1:AbCd…=",
} as const satisfies VerbSpec;

export const BUNDLE_INSPECT = {
  path: ["bundle", "inspect"],
  summary: "list a bundle's hosts and paths (verifies nothing)",
  section: "local",
  positionals: { synopsis: "FILE", min: 1, max: 1, complete: "file" },
  flags: JSON_FLAG,
  env: [],
  example: "ferry bundle inspect site-a.ferry",
} as const satisfies VerbSpec;

export const BUNDLE_IMPORT = {
  path: ["bundle", "import"],
  summary: "verify a bundle and load it into the site controller's cache; --deploy or --rollout also deploys its systems",
  section: "operator",
  positionals: { synopsis: "FILE", min: 1, max: 1, complete: "file" },
  flags: {
    "trusted-key": TRUSTED_KEY,
    "manifest-file": MANIFEST_FILE_FLAG,
    deploy: { type: "boolean", default: false, description: "also deploy each host's system from the bundle" },
    rollout: {
      type: "boolean",
      default: false,
      description: "instead of --deploy, roll the bundle's systems out in waves, with the policy flags of ferry rollout start",
    },
    ...ROLLOUT_POLICY_FLAGS,
    mode: MODE_FLAG,
    "cache-url": {
      type: "string",
      value: "URL",
      description: "the site cache to load",
      defaultText: "$FERRY_CACHE_URL, else the cache the controller advertises",
    },
    "no-local-verify": { type: "boolean", default: false, description: "leave verification to the controller alone (no --trusted-key needed)" },
    "two-pass": {
      type: "boolean",
      default: false,
      description: "verify the whole file here before sending anything (for controllers without single-pass import)",
    },
    ...CONNECTION_FLAGS,
  },
  env: [...CONNECTION_ENV, "FERRY_TRUSTED_KEYS", "FERRY_CACHE_URL"],
  example: "ferry bundle import site-a.ferry --trusted-key release-1:AbCd…= --rollout --canary 1 --batch 25%",
} as const satisfies VerbSpec;

export const SITE_INVENTORY = {
  path: ["site", "inventory"],
  summary: "write which paths the site's cache holds, for bundle create --since",
  section: "operator",
  flags: {
    output: { type: "string", short: "o", required: true, value: "FILE", complete: "file", description: "the inventory file to write" },
    ...CONNECTION_FLAGS,
  },
  env: CONNECTION_ENV,
  example: "ferry site inventory -o site-a.inventory",
} as const satisfies VerbSpec;
