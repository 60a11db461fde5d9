import { CONNECTION_ENV, CONNECTION_FLAGS } from "./common.js";
import type { VerbSpec } from "./types.js";

export const HOST_ADD = {
  path: ["host", "add"],
  summary: "register a host; its agent token goes where --token-out says (shown once)",
  section: "operator",
  positionals: { synopsis: "NAME", min: 1, max: 1 },
  flags: {
    tag: { type: "string", multiple: true, default: [], value: "TAG", description: "a tag rollouts and windows can select the host by (repeatable)" },
    "token-out": {
      type: "string",
      required: true,
      value: "FILE|-",
      complete: "file",
      description: "where the agent token goes: FILE (mode 0600), or - for stdout",
    },
    ...CONNECTION_FLAGS,
  },
  env: CONNECTION_ENV,
  example: "ferry host add web-1 --tag web --tag production --token-out web-1.token",
} as const satisfies VerbSpec;

export const HOST_LIST = {
  path: ["host", "list"],
  summary: "list the registered hosts with their tags and link state",
  section: "operator",
  flags: {
    phase: { type: "string", multiple: true, value: "PHASE", description: "only hosts in this phase (repeatable), e.g. failed, rolled-back, active" },
    tag: { type: "string", multiple: true, value: "TAG", description: "only hosts carrying this tag (repeatable)" },
    ...CONNECTION_FLAGS,
  },
  env: CONNECTION_ENV,
  example: "ferry host list --json",
} as const satisfies VerbSpec;

export const HOST_REMOVE = {
  path: ["host", "remove"],
  summary: "forget a host and disconnect its agent; its token stops working",
  section: "operator",
  positionals: { synopsis: "NAME", min: 1, max: 1 },
  flags: CONNECTION_FLAGS,
  env: CONNECTION_ENV,
  example: "ferry host remove web-1",
} as const satisfies VerbSpec;

export const STATUS = {
  path: ["status"],
  summary: "what each host runs, should run, and its last error",
  section: "operator",
  positionals: { synopsis: "[HOST]...", min: 0 },
  flags: {
    phase: { type: "string", multiple: true, value: "PHASE", description: "only hosts in this phase (repeatable), e.g. failed, rolled-back, active" },
    tag: { type: "string", multiple: true, value: "TAG", description: "only hosts carrying this tag (repeatable)" },
    ...CONNECTION_FLAGS,
  },
  env: CONNECTION_ENV,
  example: "ferry status web-1 web-2",
} as const satisfies VerbSpec;
