import { DEFAULT_LOG_LEVEL } from "@ferry/core";
import { JSON_FLAG } from "./common.js";
import type { VerbSpec } from "./types.js";

export const KEYS_GENERATE = {
  path: ["keys", "generate"],
  summary: "make a Nix signing key pair: DIR/NAME.secret and DIR/NAME.public",
  section: "local",
  flags: {
    name: { type: "string", required: true, value: "NAME", description: "the key's name, part of every signature" },
    out: { type: "string", required: true, value: "DIR", complete: "directory", description: "the directory to write both files to" },
    force: {
      type: "boolean",
      default: false,
      description: "replace an existing key pair of that name (hosts trusting the old public key stop trusting new pushes)",
    },
    ...JSON_FLAG,
  },
  env: [],
  example: "ferry keys generate --name ci-1 --out keys",
} as const satisfies VerbSpec;

export const CONTROLLER = {
  path: ["controller"],
  summary: "run the controller: agent link and binary cache over HTTP, operator API over gRPC",
  section: "local",
  flags: {
    "data-dir": { type: "string", required: true, value: "DIR", complete: "directory", description: "state, cache and DIR/admin.token, the operator token" },
    listen: {
      type: "string",
      value: "HOST:PORT",
      default: "0.0.0.0:7070",
      description: "HTTP for agents (/agent), the binary cache (/cache), bundle uploads and GET /healthz",
    },
    "grpc-listen": { type: "string", value: "HOST:PORT", default: "127.0.0.1:7071", description: "the operator API the CLI talks to (--controller)" },
    "public-url": {
      type: "string",
      value: "URL",
      description: "how agents and uploaders reach --listen, when that differs (proxy, NAT)",
      defaultText: "the address the CLI dialled",
    },
    "heartbeat-interval": { type: "string", value: "SECONDS", default: "10", description: "how often agents prove their link is alive" },
    database: {
      type: "string",
      value: "URL",
      description:
        "postgres://USER@HOST/DB: keep state in PostgreSQL, shared by replicas (each with its own --data-dir); a password goes in PGPASSFILE, not here",
      defaultText: "$FERRY_DATABASE_URL, else DATA_DIR/state.sqlite",
    },
    "log-level": {
      type: "string",
      value: "LEVEL",
      choices: ["trace", "debug", "info", "warn", "error", "fatal", "silent"],
      description: "JSON log lines on stdout from this level up",
      defaultText: `$FERRY_LOG_LEVEL, else ${DEFAULT_LOG_LEVEL}`,
    },
    "tls-cert": {
      type: "string",
      value: "FILE",
      complete: "file",
      description: "PEM certificate (chain allowed): serve https/wss and gRPC over TLS; SIGHUP re-reads it",
    },
    "tls-key": { type: "string", value: "FILE", complete: "file", description: "the certificate's PEM key" },
    "client-ca": {
      type: "string",
      value: "FILE",
      complete: "file",
      description: "operators must present a client certificate signed by this CA (mTLS on gRPC)",
    },
    "agent-client-ca": { type: "string", value: "FILE", complete: "file", description: "agents must present a client certificate signed by this CA" },
    "private-cache": {
      type: "boolean",
      default: false,
      description: "cache reads need credentials: a host's name and agent token, or an operator token (HTTP Basic)",
    },
    "metrics-public": {
      type: "boolean",
      default: false,
      description: "serve GET /metrics without a token (a scraper on a private network); by default it needs a read-scoped token",
    },
    "cache-dir": {
      type: "string",
      value: "DIR",
      complete: "directory",
      description: "the binary cache's directory; replicas may share one (NFS): run --cache-gc-every on one of them",
      defaultText: "DIR/cache of --data-dir",
    },
    "cache-url": {
      type: "string",
      value: "URL",
      description:
        "an external Nix binary cache (nginx, S3 over HTTP, Cachix) that deploys are checked against by narinfo; agents list it in their substituters",
    },
    "cache-gc-every": {
      type: "string",
      value: "DURATION",
      description: "run ferry cache gc on its own this often (1m to 24d), e.g. 1d",
      defaultText: "never",
    },
    "cache-gc-min-age": {
      type: "string",
      value: "DURATION",
      default: "7d",
      description: "what cache gc keeps: unneeded paths younger than this, and the systems of rollouts finished within it",
    },
    "cache-gc-keep-bundles": { type: "string", value: "N", default: "3", description: "what cache gc keeps: the systems of the newest N imported bundles" },
    ...JSON_FLAG,
  },
  env: ["FERRY_LOG_LEVEL", "FERRY_DATABASE_URL", "PGPASSFILE"],
  example: "ferry controller --data-dir /var/lib/ferry --grpc-listen 127.0.0.1:7071",
  notes:
    "Runs until SIGINT or SIGTERM. GET /healthz on --listen answers 200 ok while it runs. With --json, a failure to start is printed as JSON (logs are JSON lines already).",
} as const satisfies VerbSpec;

const CONFIG_FLAG = {
  type: "string",
  required: true,
  value: "FILE",
  complete: "file",
  description: "the agent's JSON configuration (ferry agent schema describes it)",
} as const;

export const AGENT = {
  path: ["agent"],
  summary: "run the agent on a host: pull, activate, check, roll back",
  section: "local",
  flags: {
    config: CONFIG_FLAG,
    "host-name": { type: "string", value: "NAME", description: "overrides the configuration's hostName" },
    "controller-url": {
      type: "string",
      multiple: true,
      value: "URL",
      description: "overrides controllerUrl, or controllerUrls when repeated or comma-separated (ws://HOST:PORT/agent)",
    },
    "token-file": { type: "string", value: "FILE", complete: "file", description: "overrides tokenFile, the agent token from ferry host add" },
    "state-dir": { type: "string", value: "DIR", complete: "directory", description: "overrides stateDir" },
    ...JSON_FLAG,
  },
  env: ["FERRY_AGENT_FAULT"],
  example: "ferry agent --config /etc/ferry/agent.json",
  notes: "Runs until SIGINT or SIGTERM; logs JSON lines on stdout at the configuration's logLevel. With --json, a failure to start is printed as JSON.",
} as const satisfies VerbSpec;

export const AGENT_SCHEMA = {
  path: ["agent", "schema"],
  summary: "print the JSON Schema of the agent configuration, with every default",
  section: "local",
  flags: JSON_FLAG,
  env: [],
  example: "ferry agent schema > agent-config.schema.json",
  notes: "The schema is JSON with or without --json.",
} as const satisfies VerbSpec;

export const AGENT_CHECK_CONFIG = {
  path: ["agent", "check-config"],
  summary: "validate an agent configuration file without starting anything",
  section: "local",
  flags: { config: CONFIG_FLAG, ...JSON_FLAG },
  env: [],
  example: "ferry agent check-config --config /etc/ferry/agent.json --json",
  notes: "With --json, prints the configuration with every default filled in.",
} as const satisfies VerbSpec;

export const AGENT_GC = {
  path: ["agent", "gc"],
  summary: "delete system generations beyond keepGenerations, then collect garbage",
  section: "local",
  flags: { config: CONFIG_FLAG, ...JSON_FLAG },
  env: [],
  example: "ferry agent gc --config /etc/ferry/agent.json",
} as const satisfies VerbSpec;

export const DEV_HOST = {
  path: ["dev", "host"],
  summary: "run an agent with a private /nix and /run, to try Ferry on one machine",
  section: "local",
  flags: {
    config: CONFIG_FLAG,
    dir: {
      type: "string",
      value: "DIR",
      complete: "directory",
      description: "where the private /nix and the agent's state live",
      defaultText: "/var/tmp/ferry-dev/HOSTNAME",
    },
    "inside-namespace": { type: "boolean", default: false, description: "internal: set when ferry re-runs itself inside the mount namespace" },
    ...JSON_FLAG,
  },
  env: [],
  example: "ferry dev host --config agent.json",
  notes:
    "Needs root. Only /nix and /run are private: a real NixOS system's switch-to-configuration would still change this machine's /etc and systemd units, so deploy stand-in systems here (the README's quick start) and real ones to real hosts.",
} as const satisfies VerbSpec;

export const AGENT_APPLY_BUNDLE = {
  path: ["agent", "apply-bundle"],
  summary: "verify a bundle and activate this host's system from it, with no controller",
  section: "local",
  positionals: { synopsis: "FILE", min: 1, max: 1, complete: "file" },
  flags: {
    config: CONFIG_FLAG,
    host: { type: "string", value: "NAME", description: "take this host's system from the bundle", defaultText: "the configuration's hostName" },
    result: { type: "string", value: "FILE", complete: "file", description: "also write the JSON result to FILE" },
    ...JSON_FLAG,
  },
  env: [],
  example: "ferry agent apply-bundle /media/usb/site-a.ferry --config /etc/ferry/agent.json",
  notes: "Logs go to stderr, the result to stdout.",
} as const satisfies VerbSpec;
