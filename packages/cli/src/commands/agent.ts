import { createLogger, Nix, ProcessRunner } from "@ferry/core";
import { AGENT_CONFIG_SCHEMA, type AgentConfig, assertChecksRunnable, collectGarbage, loadAgentConfig, LogForwarder, startAgent } from "@ferry/agent";
import { parseVerb } from "../args.js";
import { createOutput } from "../output.js";
import { VERBS } from "../spec/index.js";
// Not from ./controller.js: that would load the whole controller (gRPC server, SQLite) into every agent.
import { waitForSignal } from "../signals.js";
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
      // Run on the host itself: whether a program exists or systemd knows a unit is a fact of this machine.
      await assertChecksRunnable(config.healthChecks, new ProcessRunner());
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
  Object.assign(overrides, controllerUrlOverrides(values["controller-url"] ?? []));
  if (values["token-file"]) overrides.tokenFile = values["token-file"];
  if (values["state-dir"]) overrides.stateDir = values["state-dir"];
  return runAgentUntilSignal(loadAgentConfig(values.config, overrides));
}

/**
 * --controller-url, repeated or comma-separated: one URL is controllerUrl,
 * several are controllerUrls, as an operator would write them in the file.
 * Either replaces both keys of the file, so that the pair never clashes.
 */
export function controllerUrlOverrides(flags: readonly string[]): Pick<AgentConfig, "controllerUrl" | "controllerUrls"> {
  const urls = flags
    .flatMap((flag) => flag.split(","))
    .map((url) => url.trim())
    .filter(Boolean);
  if (urls.length === 0) return {};
  return urls.length === 1 ? { controllerUrl: urls[0], controllerUrls: undefined } : { controllerUrl: undefined, controllerUrls: urls };
}

/** Runs an agent in this process until SIGINT or SIGTERM, or until it asks to restart into a new build. */
export async function runAgentUntilSignal(config: AgentConfig): Promise<number> {
  const forwarder = new LogForwarder();
  const log = createLogger("agent", { level: config.logLevel, also: forwarder });
  const agent = await startAgent(config, log, new ProcessRunner(), forwarder);
  // A signal stops the agent; so does its own request to restart into a new build (a distinct status for systemd).
  const status = await Promise.race([waitForSignal().then(() => 0), agent.exitRequested]);
  await agent.stop();
  return status;
}
