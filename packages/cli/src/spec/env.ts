import { DEFAULT_LOG_LEVEL } from "@ferry/core";

/**
 * Every environment variable Ferry reads, described once; verbs list the
 * names they read and help prints these lines. A unit test checks that each
 * variable the code reads is here.
 */
export const ENV = {
  FERRY_CONTROLLER: "operator API address HOST:PORT (the controller's --grpc-listen), when --controller is not given",
  FERRY_TOKEN_FILE: "operator token file, when --token-file is not given",
  FERRY_CONTEXT: "the context of the CLI configuration to use, when --context is not given",
  XDG_CONFIG_HOME: "the CLI configuration is $XDG_CONFIG_HOME/ferry/config.json (default ~/.config/ferry/config.json)",
  FERRY_CACHE_URL: "binary cache URL, when --cache-url is not given (default: the cache the controller advertises)",
  FERRY_TRUSTED_KEYS: "public keys NAME:BASE64, separated by spaces, trusted in addition to each --trusted-key",
  FERRY_SIGNING_KEY_FILE: "secret key file, when --signing-key-file is not given",
  FERRY_LOG_LEVEL: `log level (trace, debug, info, warn, error), when --log-level is not given; default ${DEFAULT_LOG_LEVEL}`,
  FERRY_DATABASE_URL: "ferry controller: the PostgreSQL URL, when --database is not given (keeps it out of the process list)",
  PGPASSFILE: "ferry controller: the password file PostgreSQL clients read (hostname:port:database:username:password)",
  FERRY_AGENT_FAULT: "tests only: pause-after:PHASE stops the agent right after it recorded PHASE",
  FERRY_CA_FILE: "PEM file of the CA the controller's certificate must chain to, when --ca is not given",
  FERRY_CLIENT_CERT: "client certificate (PEM) for a controller that requires one (--client-ca), when --client-cert is not given",
  FERRY_CLIENT_KEY: "the client certificate's key, when --client-key is not given",
  FERRY_INSECURE: "1 allows plaintext gRPC to a controller that is not on loopback, like --insecure",
  FERRY_INTENT_KEY_FILE: "secret key that signs deploy intents, when --intent-key-file is not given",
  TERM: "TERM=dumb makes rollout watches print plain lines instead of redrawing the terminal",
} as const;

export type EnvName = keyof typeof ENV;

/** A documented variable's value; an empty variable counts as unset. */
export function readEnv(name: EnvName): string | undefined {
  const value = process.env[name];
  return value === undefined || value === "" ? undefined : value;
}
