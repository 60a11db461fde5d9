import { MODES, MODE_SUMMARY } from "@ferry/core";
import type { EnvName } from "./env.js";

/** Every verb takes --json: its result, or its error, as one JSON document on stdout. */
export const JSON_FLAG = {
  json: { type: "boolean", default: false, description: "print the result, or the error, as one JSON document on stdout" },
} as const;

/** How an operator verb reaches the controller; each falls back to its variable, then to the context. */
export const CONNECTION_FLAGS = {
  controller: {
    type: "string",
    value: "HOST:PORT",
    description: "the controller's operator API (its --grpc-listen address)",
    defaultText: "$FERRY_CONTROLLER, else the context's",
  },
  "token-file": {
    type: "string",
    value: "FILE",
    complete: "file",
    description: "operator token (the controller writes DATA_DIR/admin.token)",
    defaultText: "$FERRY_TOKEN_FILE, else the context's",
  },
  context: {
    type: "string",
    value: "NAME",
    complete: "context",
    description: "use this context of the CLI configuration (ferry context list)",
    defaultText: "$FERRY_CONTEXT, else the current context",
  },
  ca: {
    type: "string",
    value: "FILE",
    complete: "file",
    description: "PEM CA the controller's certificate must chain to (with --controller https://… or grpcs://…)",
    defaultText: "$FERRY_CA_FILE, else the context's caFile, else the system's",
  },
  "client-cert": { type: "string", value: "FILE", complete: "file", description: "client certificate for a controller started with --client-ca" },
  "client-key": { type: "string", value: "FILE", complete: "file", description: "the client certificate's key" },
  insecure: { type: "boolean", default: false, description: "allow plaintext gRPC to a controller that is not on loopback" },
  ...JSON_FLAG,
} as const;

export const CONNECTION_ENV = [
  "FERRY_CONTROLLER",
  "FERRY_TOKEN_FILE",
  "FERRY_CONTEXT",
  "XDG_CONFIG_HOME",
  "FERRY_CA_FILE",
  "FERRY_CLIENT_CERT",
  "FERRY_CLIENT_KEY",
  "FERRY_INSECURE",
] as const satisfies readonly EnvName[];

export const MODE_FLAG = {
  type: "string",
  value: "MODE",
  choices: MODES,
  defaultText: "each host's own strategy (trial unless configured otherwise)",
  description: `how hosts activate it: ${MODES.map((mode) => `${mode}: ${MODE_SUMMARY[mode]}`).join("; ")}`,
} as const;

/** Written in examples where a real store path would stand. */
export const EXAMPLE_PATH = "/nix/store/0c8ahvb2flj8kllmqcqgamv1hbnhr07y-nixos-system-web-1";

/** Signed deploy intents (ferry deploy, rollout start, dry-activate): hosts that require them refuse anything else. */
export const INTENT_FLAGS = {
  "intent-key-file": {
    type: "string",
    value: "FILE",
    complete: "file",
    description: "sign a deploy intent per host with this secret key (hosts trust its public half in intentPublicKeys)",
    defaultText: "$FERRY_INTENT_KEY_FILE",
  },
  "intent-expires-in": { type: "string", value: "DURATION", description: "how long the signed intents stay valid", defaultText: "7d (dry-activate: 1h)" },
  intents: { type: "string", value: "FILE", complete: "file", description: "send pre-signed intents (ferry intent sign) instead of signing here" },
} as const;
