import { createLogger, ProcessRunner } from "@ferry/core";
import { type AgentConfig, loadAgentConfig, LogForwarder, startAgent } from "@ferry/agent";
import { parseVerb } from "../args.js";
// The verb's own table entry, not the whole CLI's: ferry-agent (agent-main.ts) loads only what the agent needs.
import { AGENT } from "../spec/local.js";
// Not from ./controller.js: that would load the whole controller (gRPC server, SQLite) into every agent.
import { waitForSignal } from "../signals.js";

/** `ferry agent` and `ferry-agent`: the long-running agent, with its flags over the configuration file. */
export async function runAgent(args: string[]): Promise<number> {
  const { values } = parseVerb(AGENT, args);
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
