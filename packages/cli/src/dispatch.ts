export type Command = (args: string[]) => Promise<number>;

/** Each top-level word's command module, loaded only when used: help and completion need none of them. */
export const COMMANDS: Readonly<Record<string, () => Promise<Command>>> = {
  controller: async () => (await import("./commands/controller.js")).controllerCommand,
  agent: async () => (await import("./commands/agent.js")).agentCommand,
  host: async () => (await import("./commands/host.js")).hostCommand,
  cache: async () => (await import("./commands/cache.js")).cacheCommand,
  keys: async () => (await import("./commands/keys.js")).keysCommand,
  deploy: async () => (await import("./commands/deploy.js")).deployCommand,
  status: async () => (await import("./commands/status.js")).statusCommand,
  rollout: async () => (await import("./commands/rollout.js")).rolloutCommand,
  window: async () => (await import("./commands/window.js")).windowCommand,
  bundle: async () => (await import("./commands/bundle.js")).bundleCommand,
  site: async () => (await import("./commands/site.js")).siteCommand,
  history: async () => (await import("./commands/history.js")).historyCommand,
  rollback: async () => (await import("./commands/rollback.js")).rollbackCommand,
  logs: async () => (await import("./commands/logs.js")).logsCommand,
  "dry-activate": async () => (await import("./commands/dry-activate.js")).dryActivateCommand,
  dev: async () => (await import("./commands/dev.js")).devCommand,
  intent: async () => (await import("./commands/intent.js")).intentCommand,
  token: async () => (await import("./commands/token.js")).tokenCommand,
  audit: async () => (await import("./commands/audit.js")).auditCommand,
  context: async () => (await import("./commands/context.js")).contextCommand,
  completion: async () => (await import("./commands/completion.js")).completionCommand,
  help: async () => (await import("./commands/help.js")).helpCommand,
  version: async () => (await import("./commands/help.js")).versionCommand,
};
