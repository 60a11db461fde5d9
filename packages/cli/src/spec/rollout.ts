// The subpath: the whole controller (gRPC server, SQLite) would otherwise load with every CLI verb.
import { DEFAULT_POLICY } from "@ferry/controller/default-policy";
import { formatDuration, formatQuantity } from "../units.js";
import { CONNECTION_ENV, CONNECTION_FLAGS, MODE_FLAG, EXAMPLE_PATH, INTENT_FLAGS } from "./common.js";
import type { VerbSpec } from "./types.js";

// The controller fills in what a rollout leaves unset; help shows its values.
const POLICY = DEFAULT_POLICY;

/** The rollout policy flags, shared by `ferry rollout start` and `ferry bundle import --rollout`. */
export const ROLLOUT_POLICY_FLAGS = {
  canary: {
    type: "string",
    value: "N|N%",
    description: "a first wave of this many hosts; any failure in it aborts",
    defaultText: POLICY.canary.value === 0 ? "no canary wave" : formatQuantity(POLICY.canary),
  },
  batch: {
    type: "string",
    value: "N|N%",
    description: "hosts per wave after the canary",
    defaultText: POLICY.batch.value === 0 ? "all remaining hosts in one wave" : formatQuantity(POLICY.batch),
  },
  "max-unavailable": { type: "string", value: "N", default: String(POLICY.maxUnavailable), description: "hosts switching (or failed) at once" },
  "failure-threshold": {
    type: "string",
    value: "N|N%",
    description: "abort when this many finished hosts failed",
    defaultText: formatQuantity(POLICY.failureThreshold),
  },
  "min-executed": { type: "string", value: "N", default: String(POLICY.minExecuted), description: "apply --failure-threshold once this many hosts finished" },
  pause: { type: "string", value: "DURATION", description: "wait this long between waves (90s, 5m, 1h30m)", defaultText: "no pause" },
  gate: { type: "boolean", default: false, description: "hold after each wave until ferry rollout promote ID (excludes --pause)" },
  "progress-deadline": {
    type: "string",
    value: "DURATION",
    description: "abort when a wave has not finished within DURATION",
    defaultText: POLICY.progressDeadlineMs === 0 ? "none" : formatDuration(POLICY.progressDeadlineMs),
  },
  "prefetch-timeout": {
    type: "string",
    value: "DURATION",
    description: "how long hosts may take to fetch their closures before activation starts",
    defaultText: formatDuration(POLICY.prefetchTimeoutMs),
  },
  "skip-unfetchable": { type: "boolean", default: false, description: "leave out hosts that cannot fetch their closure instead of aborting" },
  "rollback-on-abort": { type: "boolean", default: false, description: "when the rollout aborts, switch the hosts it already switched back" },
  "accept-failing-checks": {
    type: "boolean",
    default: false,
    description: "count a canary whose health checks all failed before and after the switch as healthy, instead of pausing",
  },
} as const;

export const ROLLOUT_START = {
  path: ["rollout", "start"],
  summary: "roll systems out over many hosts in waves: prefetch everywhere, then canary, then batches",
  section: "operator",
  positionals: { synopsis: "[HOST=STOREPATH]...", min: 0 },
  flags: {
    manifest: { type: "string", value: "FILE", complete: "file", description: 'the systems, as {"hosts": {"HOST": "/nix/store/…"}}' },
    hosts: { type: "string", value: "A,B", description: "of the manifest, roll out to these hosts only" },
    tag: { type: "string", multiple: true, default: [], value: "TAG", description: "of the manifest, roll out to the hosts with this tag (repeatable)" },
    environment: { type: "string", default: "", value: "ENV", description: "label the rollout with an environment (staging, production…)" },
    after: { type: "string", default: "", value: "ENV", description: "refuse unless the same systems completed a rollout in ENV first" },
    ...ROLLOUT_POLICY_FLAGS,
    mode: MODE_FLAG,
    "allow-unsigned": {
      type: "boolean",
      default: false,
      description: "start it although the cache holds no signature for some closure path (hosts still check their own keys)",
    },
    ...INTENT_FLAGS,
    wait: { type: "boolean", default: false, description: "follow the rollout until it ends (exit 0 all confirmed, 3 some skipped, 1 otherwise)" },
    timeout: { type: "string", value: "SECONDS", default: "3600", description: "with --wait, stop following after this long (the rollout goes on)" },
    ...CONNECTION_FLAGS,
  },
  env: [...CONNECTION_ENV, "TERM", "FERRY_INTENT_KEY_FILE"],
  example: "ferry rollout start --manifest hosts.json --tag web --canary 1 --batch 25% --pause 5m --wait",
  notes: `Targets: HOST=STOREPATH arguments, or --manifest narrowed by --hosts and --tag. Example manifest: {"hosts": {"web-1": "${EXAMPLE_PATH}"}}`,
} as const satisfies VerbSpec;

export const ROLLOUT_STATUS = {
  path: ["rollout", "status"],
  summary: "one rollout's waves, hosts and policy",
  section: "operator",
  positionals: { synopsis: "ID", min: 1, max: 1 },
  flags: {
    wait: { type: "boolean", default: false, description: "follow the rollout live until it ends (exit as rollout start --wait; 130 on Ctrl-C)" },
    timeout: { type: "string", value: "SECONDS", default: "3600", description: "with --wait, stop following after this long (the rollout goes on)" },
    ...CONNECTION_FLAGS,
  },
  env: [...CONNECTION_ENV, "TERM"],
  example: "ferry rollout status r-mwrannty-3f9a1c --wait",
} as const satisfies VerbSpec;

export const ROLLOUT_LIST = {
  path: ["rollout", "list"],
  summary: "the most recent rollouts, newest first",
  section: "operator",
  flags: {
    limit: { type: "string", value: "N", default: "50", description: "show at most N rollouts" },
    ...CONNECTION_FLAGS,
  },
  env: CONNECTION_ENV,
  example: "ferry rollout list --limit 10",
} as const satisfies VerbSpec;

function control(verb: "pause" | "resume" | "abort" | "promote", summary: string) {
  return {
    path: ["rollout", verb],
    summary,
    section: "operator",
    positionals: { synopsis: "ID", min: 1, max: 1 },
    flags: {
      reason: { type: "string", default: "", value: "TEXT", description: "recorded with the action" },
      ...(verb === "resume"
        ? {
            "accept-failing-checks": {
              type: "boolean",
              default: false,
              description: "count canaries whose checks all failed before and after the switch as healthy from now on",
            } as const,
          }
        : {}),
      ...CONNECTION_FLAGS,
    },
    env: CONNECTION_ENV,
    example: `ferry rollout ${verb} r-mwrannty-3f9a1c${verb === "abort" ? ' --reason "error rate up"' : ""}`,
  } as const satisfies VerbSpec;
}

export const ROLLOUT_PAUSE = control("pause", "stop starting new hosts; hosts already switching finish");
export const ROLLOUT_RESUME = control("resume", "continue a paused rollout");
export const ROLLOUT_ABORT = control("abort", "end a rollout now (with --rollback-on-abort, switch its hosts back)");
export const ROLLOUT_PROMOTE = control("promote", "open the gate after a wave of a rollout started with --gate");
