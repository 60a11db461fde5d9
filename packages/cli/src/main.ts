#!/usr/bin/env node
import { FERRY_VERSION } from "@ferry/core";
import { agentCommand } from "./commands/agent.js";
import { cacheCommand } from "./commands/cache.js";
import { controllerCommand } from "./commands/controller.js";
import { deployCommand } from "./commands/deploy.js";
import { hostCommand } from "./commands/host.js";
import { keysCommand } from "./commands/keys.js";
import { statusCommand } from "./commands/status.js";
import { rolloutCommand } from "./commands/rollout.js";
import { windowCommand } from "./commands/window.js";
import { bundleCommand } from "./commands/bundle.js";
import { siteCommand } from "./commands/site.js";
import { dryActivateCommand } from "./commands/dry-activate.js";
import { devCommand } from "./commands/dev.js";
import { intentCommand } from "./commands/intent.js";
import { reportError } from "./output.js";
import { USAGE } from "./usage.js";

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  controller: controllerCommand,
  agent: agentCommand,
  host: hostCommand,
  cache: cacheCommand,
  keys: keysCommand,
  deploy: deployCommand,
  status: statusCommand,
  rollout: rolloutCommand,
  window: windowCommand,
  bundle: bundleCommand,
  site: siteCommand,
  "dry-activate": dryActivateCommand,
  dev: devCommand,
  intent: intentCommand,
};

async function main(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  if (verb === undefined || verb === "help" || verb === "--help" || verb === "-h") {
    process.stdout.write(USAGE);
    return verb === undefined ? 2 : 0;
  }
  if (verb === "--version" || verb === "version") {
    process.stdout.write(`ferry ${FERRY_VERSION}\n`);
    return 0;
  }
  const command = COMMANDS[verb];
  if (!command) {
    process.stderr.write(`unknown command ${JSON.stringify(verb)}\n\n${USAGE}`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(USAGE);
    return 0;
  }
  try {
    return await command(rest);
  } catch (error) {
    return reportError(error, rest.includes("--json"));
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.exitCode = reportError(error, false);
  },
);
