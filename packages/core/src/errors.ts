/**
 * Every failure an operator can see carries a stable code. Scripts match on the
 * code, people read the message and the hint; neither may change silently.
 */
export const ERROR_HINTS = {
  E_BAD_STORE_PATH: "A store path looks like /nix/store/<32 base32 chars>-<name>.",
  E_BAD_HOST_NAME: "Host names are DNS labels: letters, digits and '-', dot-separated, at most 253 chars; case does not matter (Web-2 is web-2).",
  E_BAD_TAG: "Tags use letters, digits, '-', '_' and '.', at most 63 chars.",
  E_BAD_ARGUMENT: "Run the command with --help to see its arguments.",
  E_BAD_CONFIG: "Fix the named key in the configuration file.",
  E_UNKNOWN_HOST: "Add the host first: ferry host add NAME.",
  E_HOST_EXISTS: "Pick another name, or remove the host first: ferry host remove NAME.",
  E_AUTH: "Check the token file (operator: DATA_DIR/admin.token; agent: the token printed by ferry host add).",
  E_FORBIDDEN_HOST: "An agent may only speak for the host its token belongs to.",
  E_PROTOCOL_VERSION: "Upgrade the older side: agent and controller must speak the same protocol version.",
  E_MALFORMED_FRAME: "The peer sent bytes that are not a valid Ferry message; check versions and proxies.",
  E_SUPERSEDED: "Two agents use the same host name and token; each host needs its own.",
  E_HELLO_TIMEOUT: "The agent did not introduce itself in time; check it speaks the Ferry protocol.",
  E_RATE_LIMITED:
    "The agent sent frames faster than the controller accepts from one host; it reconnects after its back-off. Repeated, the host is misbehaving.",
  E_FRAME_TOO_LARGE: "A frame exceeded the size limit; this is a bug or an attack.",
  E_PATH_NOT_IN_CACHE: "Push the closure first: ferry cache push STOREPATH.",
  E_UNSIGNED_PATH:
    "Sign the closure with a key the host trusts (ferry cache push --signing-key-file adds signatures to what the cache holds), or add the key to the agent's trustedPublicKeys.",
  E_CACHE_UNSIGNED:
    "The cache holds no signature at all for part of the closure: push it again with --signing-key-file (signatures are added), or pass --allow-unsigned if the hosts get signed copies elsewhere.",
  E_CACHE_CONFLICT:
    "The cache already holds this store path with another NAR hash (a build that is not reproducible?); keep the cache's copy, or remove it first (ferry cache rm PATH) and push again.",
  E_CACHE_GC_RUNNING:
    "Another controller sharing this cache directory collects it now (named in the message); wait for it to finish, and set --cache-gc-every on one replica only.",
  E_CACHE_UNREACHABLE:
    "The controller cannot read the external binary cache (--cache-url): check the URL, that the cache serves <hash>.narinfo files, and the network between them.",
  E_CACHE_BAD_NARINFO:
    "The external binary cache served a narinfo that is not one (malformed, too large, or for another path); check what pushes to that cache.",
  E_CACHE_PATH_IN_USE: "A host's desired, current or previous system needs this path; deploy another system to that host first.",
  E_PUSH_UNSIGNED:
    "Sign what you push: --signing-key-file KEY or FERRY_SIGNING_KEY_FILE; pass --unsigned only if the hosts should refuse these paths until they are signed.",
  E_FETCH_FAILED: "Check that the host reaches its substituters and that the path is in the cache.",
  E_ACTIVATION_FAILED: "See the captured output of switch-to-configuration for the failing unit.",
  E_ACTIVATION_TIMEOUT: "switch-to-configuration did not finish in time; raise activationTimeout or find the hung unit.",
  E_PROFILE_FAILED: "nix-env could not set the system profile; check free space and permissions on /nix/var/nix/profiles.",
  E_HEALTH_CHECK_FAILED: "A health check failed on the new system; the agent restored the previous one. See the check output.",
  E_CHECKS_FAILING:
    "Confirmed, but some health checks failed before the switch and still fail; they were not counted, so they prove nothing. Fix the service or the check (ferry status HOST names them).",
  E_CHECKS_UNPROVEN:
    "No health check passed on the new system (each failed before the switch too), so a rollout's canary does not count it healthy. Fix the checks, or accept: ferry rollout resume ID --accept-failing-checks.",
  E_CONFIRM_TIMEOUT: "The new system did not prove itself healthy and connected before confirmTimeout; the previous one was restored.",
  E_NO_SPACE:
    "A disk is full: on a host, /nix lacks the closure size plus the reserve (collect garbage); on the controller, its data directory. Free space or grow the disk.",
  E_INTERRUPTED: "The agent or the machine stopped in the middle of an activation; the previous system was restored.",
  E_ROLLBACK_FAILED: "Restoring the previous system failed too; the host needs an operator.",
  E_UNKNOWN_ROLLOUT: "List rollouts with: ferry rollout list.",
  E_ROLLOUT_CONFLICT: "A host belongs to a rollout still in progress; wait for it, or abort it first.",
  E_ROLLOUT_STATE: "That action does not apply to the rollout in its current state; see ferry rollout status ID.",
  E_AFTER_NOT_SATISFIED: "Roll the same manifest out to the named environment first, and let it complete.",
  E_NO_TARGETS: "Name hosts (HOST=PATH, --hosts, --tag) that appear in the manifest.",
  E_UNKNOWN_WINDOW: "List windows with: ferry window list.",
  E_PREFETCH_TIMEOUT: "The host did not fetch its closure in time; check its link and disk, or raise --prefetch-timeout.",
  E_SWITCH_LOCKED: "Another switch-to-configuration holds the switch lock (a manual nixos-rebuild?); let it finish, then deploy again.",
  E_HOST_OFFLINE: "The host's agent is not connected; check ferry status and the host's link.",
  E_COMMAND_FAILED: "An external command failed; its output is attached.",
  E_COMMAND_TIMEOUT: "An external command did not finish in time.",
  E_CONTROLLER_UNREACHABLE: "Check the controller address (--controller, FERRY_CONTROLLER or the context: ferry context show) and that the controller runs.",
  E_DEPLOY_TIMEOUT: "The hosts did not report in time; ferry status shows where each one stands.",
  E_DEPLOY_FAILED: "A host reported a failure; ferry status HOST shows its error.",
  E_CACHE_UPLOAD: "The upload to the controller's cache failed; check the operator token and the cache URL.",
  E_BUNDLE_TRUNCATED: "The bundle file is incomplete (an interrupted copy?); copy it again and compare its size with the original.",
  E_BUNDLE_TAMPERED: "The bundle's contents differ from what its signed manifest lists; get a fresh copy from its origin and do not use this one.",
  E_BUNDLE_SIGNATURE:
    "The bundle is not signed by a key this side trusts: pass --trusted-key (controller: DATA_DIR/bundle-trusted-keys; host: trustedPublicKeys).",
  E_BUNDLE_REPLAYED: "This site already imported a bundle with this or a newer sequence number; create a new bundle (ferry bundle create).",
  E_BUNDLE_WRONG_SITE: "The bundle was made for another site (or for none, and this site has a name); create it with --site NAME of this site.",
  E_BUNDLE_EXPIRED: "The bundle is past its expiry; create a new one (ferry bundle create --expires-in), or check this machine's clock.",
  E_BUNDLE_SEQUENCE:
    "The bundle's sequence is implausibly far ahead (more than 30 days past the last one and this clock); a bundle key may be misused. Create it with the default sequence.",
  E_BUNDLE_FORMAT: "The file is not a Ferry bundle, or its manifest is malformed; check the file and ferry bundle inspect it.",
  E_BUNDLE_VERSION: "The bundle was made for another major format version; create it with a Ferry of the same major version.",
  E_BUNDLE_HOST_MISSING: "The bundle has no system for this host; check --host and the bundle's hosts (ferry bundle inspect FILE).",
  E_BUNDLE_INCOMPLETE: "The site lacks paths a delta bundle left out; make a new inventory (ferry site inventory) and a bundle --since it.",
  E_BUSY: "The controller is at a limit it sets to protect itself (uploads, streams); retry shortly.",
  E_STATE_WRITE_FAILED:
    "The agent cannot write its state file (disk full or read-only?); free space in its stateDir. It keeps the state in memory and writes it once it can.",
  E_STATE_CORRUPT: "The agent's state.json was damaged or missing; it carried on from state.json.backup and kept the damaged file aside.",
  E_STATE_UNREADABLE:
    "Neither state.json nor state.json.backup in the agent's stateDir is readable: restore one, or remove both to start afresh (forgetting any activation in progress).",
  E_AGENT_RESTART_INEFFECTIVE:
    "The agent exited to restart into the build its unit names but came back as the old one: check the unit's ExecStart (drop-ins?) and RestartForceExitStatus=75.",
  E_ADDRESS_IN_USE: "Another process listens on that address: stop it, or give this one another port (ferry controller --listen / --grpc-listen).",
  E_FILE_NOT_FOUND: "Check the named file's path; a relative path starts from the current directory.",
  E_FILE_UNREADABLE: "Check the named file's permissions and its directory's (ls -ld), and that it is a file, not a directory.",
  E_NATIVE_MODULE: "A native module is not built for this Node.js: run the npm command in the message in the Ferry checkout (npm ci rebuilds everything).",
  E_UNKNOWN_CONTEXT: "List contexts with ferry context list; create one with ferry context set NAME --controller HOST:PORT --token-file FILE.",
  E_NOT_OPERATOR_PORT:
    "Point --controller (FERRY_CONTROLLER, or the context) at the controller's gRPC operator address (its --grpc-listen), not its HTTP port.",
  E_INTERNAL: "This is a bug in Ferry; please report it with the log.",
  E_DATA_DIR_LOCKED: "Another controller uses this data directory; stop it (the pid is named above) or give this one its own --data-dir.",
  E_DATA_DIR_UNUSABLE: "The controller cannot create or lock its data directory; check --data-dir, its owner and its permissions.",
  E_DATABASE:
    "The controller cannot use its database: check that PostgreSQL runs and that --database names a reachable server, database and user (a password goes in PGPASSFILE, not the URL on a command line).",
  E_NO_LEADER:
    'No controller replica holds the rollout lock right now (one is starting, or the database is unreachable); retry in a few seconds, and check the replicas\' logs for "drives rollouts".',
  E_HOST_CASE_CLASH: "Host names ignore case; remove one of the named hosts from the database as the message says, then start again.",
  E_KEY_EXISTS: "A key pair with this name exists; hosts trust its public key. Pick another --name, or pass --force to replace it.",
  E_SCOPE:
    "The operator token lacks the scope (or the tag/environment) this needs; ferry token list shows what each token may do. Use a token that has it, or have an admin create one (ferry token create).",
  E_UNKNOWN_TOKEN: "List tokens with: ferry token list.",
  E_TOKEN_EXISTS: "Pick another name, or revoke the token first: ferry token revoke NAME (or give it a new secret: ferry token rotate NAME).",
  E_INSECURE_TRANSPORT:
    "Plaintext is allowed to loopback only: use https://, grpcs:// or wss:// with the controller's certificate, or allow it explicitly on a network you trust (CLI: --insecure; agent: allowInsecureTransport = true).",
  E_TLS_UNTRUSTED: "The peer's certificate is not signed by a CA this side trusts: give the CA that signed it (CLI: --ca FILE; agent: caFile).",
  E_TLS_EXPIRED: "A certificate is expired or not yet valid: renew it and reload the controller (SIGHUP / systemctl reload), or check this machine's clock.",
  E_TLS_NAME_MISMATCH:
    "The certificate does not name the address dialled: connect by a DNS name or IP listed in its subjectAltName, or reissue it with that name.",
  E_TLS_CLIENT_CERT:
    "The controller wants a client certificate signed by its client CA: give one (CLI: --client-cert/--client-key; agent: tlsCertFile/tlsKeyFile).",
  E_TLS_MATERIAL: "A certificate, key or CA file is unreadable or not PEM, or the key does not belong to the certificate; check the file named.",
  E_CACHE_AUTH:
    "The private binary cache refused the credentials: check the host's agent token (or the operator token) and that the substituter is the controller.",
  E_INTENT_MALFORMED: "The signed intent is not a valid ferry-intent-v1 text; sign it again (ferry intent sign, or deploy --intent-key-file).",
  E_INTENT_SIGNATURE:
    "The intent carries no valid signature by a key this host trusts: sign it with a key whose public half is in the agent's intentPublicKeys.",
  E_INTENT_UNSIGNED:
    "This host requires signed intents (requireSignedIntents): deploy with --intent-key-file KEY (or FERRY_INTENT_KEY_FILE), or --intents FILE from ferry intent sign.",
  E_INTENT_MODE_UNSIGNED:
    "This host takes that mode only with a signed intent (allowedUnsignedModes): sign the deployment (--intent-key-file), or use a mode the host allows unsigned.",
  E_INTENT_WRONG_HOST: "The intent was signed for another host; sign one naming this host.",
  E_INTENT_PATH_MISMATCH: "The desired store path is not the one the intent was signed for; deploy exactly the signed path, or sign the new one.",
  E_INTENT_MODE_MISMATCH: "The requested mode is not the mode the intent was signed for; deploy with the signed --mode, or sign again.",
  E_INTENT_EXPIRED: "The intent is outside its validity period (expired, or issued in the future); sign a fresh one (--expires-in), or check the clocks.",
  E_INTENT_REPLAYED:
    "The intent's version is below the highest this host applied (a replayed or stale intent); sign a new one (versions default to the signing time).",
  E_INTENT_VERSION: "The intent's version is implausibly far ahead (more than 30 days past this clock); a key may be misused. Sign with the default version.",
  E_INTENT_STATE:
    "The host's intent floor (STATE_DIR/intent-floor.json) is unreadable, so the host cannot tell a replay; it refuses signed deployments until an operator restores the file.",
  E_EXPORT_MALFORMED:
    "The file is not a whole nix-store --export stream (truncated, damaged, or another format); export again: nix-store --export $(nix-store -qR PATH) > FILE.",
  E_EXPORT_INCOMPLETE:
    "The export lacks part of the hosts' closures; export the whole closure of each system: nix-store --export $(nix-store -qR PATH) > FILE.",
  E_STORE_PATH_CORRUPT:
    "A path in the local store no longer matches its recorded hash; repair it (nix-store --verify --check-contents --repair) and create the bundle again.",
  E_NO_PREVIOUS_SYSTEM:
    "The host reported no system before its current one, and its history holds none it confirmed; deploy a store path instead: ferry deploy HOST=STOREPATH.",
  E_NOT_IN_HISTORY: "Pick a store path from the host's history (ferry history HOST), or deploy it: ferry deploy HOST=STOREPATH.",
  E_GENERATION_UNKNOWN:
    "The controller does not know a host's generation numbers; pass a store path from ferry history HOST, or run nixos-rebuild switch --rollback on the host.",
} as const;

export type ErrorCode = keyof typeof ERROR_HINTS;

export function isErrorCode(value: string): value is ErrorCode {
  return Object.prototype.hasOwnProperty.call(ERROR_HINTS, value);
}

export class FerryError extends Error {
  readonly code: ErrorCode;
  /** Output of the failing command, bounded, when there was one. */
  readonly output: string;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; output?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "FerryError";
    this.code = code;
    this.output = options.output ?? "";
  }

  get hint(): string {
    return ERROR_HINTS[this.code];
  }
}

/** Wraps anything thrown into a FerryError without losing the original. */
export function toFerryError(error: unknown, fallback: ErrorCode = "E_INTERNAL"): FerryError {
  if (error instanceof FerryError) return error;
  const message = error instanceof Error ? error.message : String(error);
  // A full disk is an operator's problem with a known fix, wherever it surfaces (fs or SQLite).
  const code = (error as { code?: unknown } | null)?.code;
  if (code === "ENOSPC" || code === "SQLITE_FULL" || code === "EDQUOT") return new FerryError("E_NO_SPACE", `the disk is full: ${message}`, { cause: error });
  return new FerryError(fallback, message, { cause: error });
}
