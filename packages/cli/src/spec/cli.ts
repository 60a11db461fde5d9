import { JSON_FLAG } from "./common.js";
import type { VerbSpec } from "./types.js";

const CONFIG_ENV = ["XDG_CONFIG_HOME"] as const;

export const CONTEXT_LIST = {
  path: ["context", "list"],
  summary: "list the contexts of the CLI configuration; * marks the current one",
  section: "cli",
  flags: JSON_FLAG,
  env: CONFIG_ENV,
  example: "ferry context list",
} as const satisfies VerbSpec;

export const CONTEXT_USE = {
  path: ["context", "use"],
  summary: "make a context the current one",
  section: "cli",
  positionals: { synopsis: "NAME", min: 1, max: 1, complete: "context" },
  flags: JSON_FLAG,
  env: CONFIG_ENV,
  example: "ferry context use production",
} as const satisfies VerbSpec;

export const CONTEXT_SHOW = {
  path: ["context", "show"],
  summary: "show a context; without NAME, the settings operator verbs would use now and where each comes from",
  section: "cli",
  positionals: { synopsis: "[NAME]", min: 0, max: 1, complete: "context" },
  flags: JSON_FLAG,
  env: ["FERRY_CONTEXT", "FERRY_CONTROLLER", "FERRY_TOKEN_FILE", "XDG_CONFIG_HOME"],
  example: "ferry context show",
} as const satisfies VerbSpec;

export const CONTEXT_SET = {
  path: ["context", "set"],
  summary: "create or change a context (the first one becomes current)",
  section: "cli",
  positionals: { synopsis: "NAME", min: 1, max: 1, complete: "context" },
  flags: {
    controller: { type: "string", value: "HOST:PORT", description: "the controller's operator API address" },
    "token-file": { type: "string", value: "FILE", complete: "file", description: "operator token file; stored as an absolute path" },
    ...JSON_FLAG,
  },
  env: CONFIG_ENV,
  example: "ferry context set production --controller ferry.example.net:7071 --token-file ~/.config/ferry/production.token",
  notes: "The configuration file is written atomically. A relative path written by hand in it is read from the file's directory.",
} as const satisfies VerbSpec;

export const CONTEXT_REMOVE = {
  path: ["context", "remove"],
  summary: "delete a context (if it was current, no context is current afterwards)",
  section: "cli",
  positionals: { synopsis: "NAME", min: 1, max: 1, complete: "context" },
  flags: JSON_FLAG,
  env: CONFIG_ENV,
  example: "ferry context remove staging",
} as const satisfies VerbSpec;

export const COMPLETION = {
  path: ["completion"],
  summary: "print a shell completion script",
  section: "cli",
  positionals: { synopsis: "bash|zsh|fish", min: 1, max: 1, choices: ["bash", "zsh", "fish"] },
  flags: JSON_FLAG,
  env: [],
  example: "ferry completion bash > /etc/bash_completion.d/ferry",
  notes:
    'bash: source <(ferry completion bash) in ~/.bashrc. zsh: ferry completion zsh > "${fpath[1]}/_ferry". fish: ferry completion fish > ~/.config/fish/completions/ferry.fish.',
} as const satisfies VerbSpec;

export const HELP = {
  path: ["help"],
  summary: "the overview, or one verb's flags, defaults, environment and example",
  section: "cli",
  positionals: { synopsis: "[VERB]...", min: 0 },
  flags: JSON_FLAG,
  env: [],
  example: "ferry help rollout start",
  notes: "ferry VERB --help prints the same. With --json, prints the verb's table entry.",
} as const satisfies VerbSpec;

export const VERSION = {
  path: ["version"],
  summary: "print Ferry's version",
  section: "cli",
  flags: JSON_FLAG,
  env: [],
  example: "ferry version",
} as const satisfies VerbSpec;
