import { CONNECTION_ENV, CONNECTION_FLAGS } from "./common.js";
import type { VerbSpec } from "./types.js";

export const HISTORY = {
  path: ["history"],
  summary: "each deployment of a host (or of every host) and how it ended, newest first",
  section: "operator",
  positionals: { synopsis: "[HOST]", min: 0, max: 1 },
  flags: {
    limit: { type: "string", value: "N", default: "50", description: "show at most N deployments (up to 1000)" },
    ...CONNECTION_FLAGS,
  },
  env: CONNECTION_ENV,
  example: "ferry history web-1 --limit 10",
  notes:
    "Outcomes: confirmed, boot-pending, failed, rolled-back (the host went back by itself), superseded (replaced before any result), pending. " +
    "Kept as long as the controller keeps host history (30 days, the newest 1000 events of each host).",
} as const satisfies VerbSpec;

export const ROLLBACK = {
  path: ["rollback"],
  summary: "deploy each host's previous confirmed system again",
  section: "operator",
  positionals: { synopsis: "HOST...", min: 1 },
  flags: {
    to: {
      type: "string",
      value: "STOREPATH",
      description: "this system from the host's history (ferry history HOST) instead of the previous one",
    },
    ...CONNECTION_FLAGS,
  },
  env: CONNECTION_ENV,
  example: "ferry rollback web-1 web-2",
  notes:
    "A normal deployment: each host fetches, switches and confirms it with its own strategy, now even outside its maintenance window. " +
    "It carries no signed intent: a host that requires one refuses it (E_INTENT_UNSIGNED); deploy the path with --intent-key-file instead. " +
    "The controller does not know a host's generation numbers: --to takes a store path.",
} as const satisfies VerbSpec;

export const LOGS = {
  path: ["logs"],
  summary: "the log lines a host's agent forwarded, then new ones with --follow",
  section: "operator",
  positionals: { synopsis: "HOST", min: 1, max: 1 },
  flags: {
    follow: { type: "boolean", short: "f", default: false, description: "keep printing new lines until interrupted" },
    deployment: { type: "string", value: "ID", description: "only lines of this deployment or rollout" },
    lines: { type: "string", value: "N", default: "100", description: "print at most the last N held lines first" },
    ...CONNECTION_FLAGS,
  },
  env: CONNECTION_ENV,
  example: "ferry logs web-1 --follow",
  notes:
    "The controller holds the last 1000 lines of each host in memory, not on disk: a controller restart forgets them. " +
    "With --json: one document of every line; with --follow too, one JSON object per line.",
} as const satisfies VerbSpec;
