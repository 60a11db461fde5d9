import { createLogger, FerryError, Nix, ProcessRunner } from "@ferry/core";
import { AGENT_CONFIG_SCHEMA, type AgentConfig, collectGarbage, loadAgentConfig, LogForwarder, startAgent } from "@ferry/agent";
import { parse, requireString } from "../args.js";
import { waitForSignal } from "./controller.js";
import { applyBundleCommand } from "./agent-apply-bundle.js";

export async function agentCommand(args: string[]): Promise<number> {
  if (args[0] === "schema") {
    process.stdout.write(`${JSON.stringify(AGENT_CONFIG_SCHEMA, null, 2)}\n`);
    return 0;
  }
  if (args[0] === "check-config") {
    const { values } = parse(args.slice(1), { config: { type: "string" } }, false);
    loadAgentConfig(requireString(values.config, "--config"));
    process.stdout.write("configuration is valid\n");
    return 0;
  }
  if (args[0] === "apply-bundle") return applyBundleCommand(args.slice(1));
  if (args[0] === "gc") {
    const { values } = parse(args.slice(1), { config: { type: "string" } }, false);
    const config = loadAgentConfig(requireString(values.config, "--config"));
    await collectGarbage(config, new Nix(new ProcessRunner()), createLogger("agent", { level: config.logLevel }).child({ host: config.hostName }));
    return 0;
  }
  const { values } = parse(
    args,
    {
      config: { type: "string" },
      "host-name": { type: "string" },
      "controller-url": { type: "string" },
      "token-file": { type: "string" },
      "state-dir": { type: "string" },
    },
    false,
  );
  const overrides: Partial<AgentConfig> = {};
  if (values["host-name"]) overrides.hostName = values["host-name"];
  if (values["controller-url"]) overrides.controllerUrl = values["controller-url"];
  if (values["token-file"]) overrides.tokenFile = values["token-file"];
  if (values["state-dir"]) overrides.stateDir = values["state-dir"];
  if (!values.config) throw new FerryError("E_BAD_ARGUMENT", "--config FILE is required");
  const config = loadAgentConfig(values.config, overrides);
  const forwarder = new LogForwarder();
  const log = createLogger("agent", { level: config.logLevel, also: forwarder });
  const agent = await startAgent(config, log, new ProcessRunner(), forwarder);
  // A signal stops the agent; so does its own request to restart into a new build (a distinct status for systemd).
  const status = await Promise.race([waitForSignal().then(() => 0), agent.exitRequested]);
  await agent.stop();
  return status;
}
