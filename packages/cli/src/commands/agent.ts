import { createLogger, Nix, ProcessRunner } from "@ferry/core";
import { AGENT_CONFIG_SCHEMA, type AgentConfig, collectGarbage, loadAgentConfig, LogForwarder, startAgent } from "@ferry/agent";
import { parseVerb } from "../args.js";
import { createOutput } from "../output.js";
import { VERBS } from "../spec/index.js";
import { waitForSignal } from "./controller.js";
import { applyBundleCommand } from "./agent-apply-bundle.js";

export async function agentCommand(args: string[]): Promise<number> {
  switch (args[0]) {
    case "schema": {
      parseVerb(VERBS["agent schema"], args.slice(1));
      // The schema is JSON either way: --json changes nothing.
      process.stdout.write(`${JSON.stringify(AGENT_CONFIG_SCHEMA, null, 2)}\n`);
      return 0;
    }
    case "check-config": {
      const { values } = parseVerb(VERBS["agent check-config"], args.slice(1));
      const file = values.config;
      const config = loadAgentConfig(file);
      createOutput(values.json).result({ file, valid: true, config }, () => `${file}: configuration is valid\n`);
      return 0;
    }
    case "gc": {
      const { values } = parseVerb(VERBS["agent gc"], args.slice(1));
      const config = loadAgentConfig(values.config);
      // Logs go to stderr: stdout carries the result.
      const log = createLogger("agent", { level: config.logLevel, destination: 2 }).child({ host: config.hostName });
      const result = await collectGarbage(config, new Nix(new ProcessRunner()), log);
      createOutput(values.json).result({ profile: config.profile, ...result }, () => `kept ${result.keepGenerations} generation(s); ${result.summary}\n`);
      return 0;
    }
    case "apply-bundle":
      return applyBundleCommand(args.slice(1));
    default:
      return runAgent(args);
  }
}

async function runAgent(args: string[]): Promise<number> {
  const { values } = parseVerb(VERBS.agent, args);
  const overrides: Partial<AgentConfig> = {};
  if (values["host-name"]) overrides.hostName = values["host-name"];
  if (values["controller-url"]) overrides.controllerUrl = values["controller-url"];
  if (values["token-file"]) overrides.tokenFile = values["token-file"];
  if (values["state-dir"]) overrides.stateDir = values["state-dir"];
  const config = loadAgentConfig(values.config, overrides);
  const forwarder = new LogForwarder();
  const log = createLogger("agent", { level: config.logLevel, also: forwarder });
  const agent = await startAgent(config, log, new ProcessRunner(), forwarder);
  await waitForSignal();
  await agent.stop();
  return 0;
}
