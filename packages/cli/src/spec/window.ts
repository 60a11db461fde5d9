import { CONNECTION_ENV, CONNECTION_FLAGS } from "./common.js";
import type { VerbSpec } from "./types.js";

export const WINDOW_ADD = {
  path: ["window", "add"],
  summary: "allow rollouts to switch a host, or the hosts of a tag, only while a window is open",
  section: "operator",
  flags: {
    host: { type: "string", value: "HOST", description: "the window applies to this host (give --host or --tag)" },
    tag: { type: "string", value: "TAG", description: "the window applies to the hosts with this tag" },
    cron: { type: "string", required: true, value: "EXPR", description: "when the window opens, as a cron expression" },
    duration: { type: "string", required: true, value: "DURATION", description: "how long it stays open: 90m, 2h" },
    timezone: { type: "string", default: "", value: "TZ", description: "time zone of the cron expression (Europe/Paris)", defaultText: "the controller's" },
    ...CONNECTION_FLAGS,
  },
  env: CONNECTION_ENV,
  example: 'ferry window add --tag production --cron "0 2 * * *" --duration 2h --timezone Europe/Paris',
} as const satisfies VerbSpec;

export const WINDOW_LIST = {
  path: ["window", "list"],
  summary: "list the maintenance windows",
  section: "operator",
  flags: CONNECTION_FLAGS,
  env: CONNECTION_ENV,
  example: "ferry window list",
} as const satisfies VerbSpec;

export const WINDOW_REMOVE = {
  path: ["window", "remove"],
  summary: "delete a maintenance window",
  section: "operator",
  positionals: { synopsis: "ID", min: 1, max: 1 },
  flags: CONNECTION_FLAGS,
  env: CONNECTION_ENV,
  example: "ferry window remove w-mwrannty-0b41e2",
} as const satisfies VerbSpec;
