import { createLogger, FerryError, Nix, ProcessRunner } from "@ferry/core";
import { AGENT_CONFIG_SCHEMA, type AgentConfig, assertChecksRunnable, collectGarbage, loadAgentConfig, LogForwarder, startAgent } from "@ferry/agent";
import { parse, requireString } from "../args.js";
import { createOutput } from "../output.js";
import { waitForSignal } from "./controller.js";
import { applyBundleCommand } from "./agent-apply-bundle.js";

export async function agentCommand(args: string[]): Promise<number> {
  if (args[0] === "schema") {
    process.stdout.write(`${JSON.stringify(AGENT_CONFIG_SCHEMA, null, 2)}\n`);
    return 0;
  }
  if (args[0] === "check-config") {
    const { values } = parse(args.slice(1), { config: { type: "string" }, json: { type: "boolean", default: false } }, false);
    const file = requireString(values.config, "--config");
    const config = loadAgentConfig(file);
    // Run on the host itself: whether a program exists or systemd knows a unit is a fact of this machine.
    await assertChecksRunnable(config.healthChecks, new ProcessRunner());
    createOutput(values.json).result({ valid: true, config: file, healthChecks: config.healthChecks.length }, () => "configuration is valid\n");
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
  return runAgentUntilSignal(loadAgentConfig(values.config, overrides));
}

/** Runs an agent in this process until SIGINT or SIGTERM. */
export async function runAgentUntilSignal(config: AgentConfig): Promise<number> {
  const forwarder = new LogForwarder();
  const log = createLogger("agent", { level: config.logLevel, also: forwarder });
  const agent = await startAgent(config, log, new ProcessRunner(), forwarder);
  // A signal stops the agent; so does its own request to restart into a new build (a distinct status for systemd).
  const status = await Promise.race([waitForSignal().then(() => 0), agent.exitRequested]);
  await agent.stop();
  return status;
}
