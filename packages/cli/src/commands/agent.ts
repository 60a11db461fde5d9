import { createLogger, Nix, ProcessRunner } from "@ferry/core";
import { AGENT_CONFIG_SCHEMA, assertChecksRunnable, collectGarbage, loadAgentConfig } from "@ferry/agent";
import { parseVerb } from "../args.js";
import { createOutput } from "../output.js";
import { VERBS } from "../spec/index.js";
import { applyBundleCommand } from "./agent-apply-bundle.js";
import { runAgent } from "./agent-run.js";

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
