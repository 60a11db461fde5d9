import { assertHostName, createLogger, FerryError, writeFileAtomic } from "@ferry/core";
import { applyBundle, loadAgentConfig } from "@ferry/agent";
import { parse, requireString } from "../args.js";
import { createOutput } from "../output.js";

/** `ferry agent apply-bundle FILE --config AGENT.json [--host NAME] [--result FILE]`: logs go to stderr, the result to stdout and FILE. */
export async function applyBundleCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    config: { type: "string" },
    host: { type: "string" },
    result: { type: "string" },
    json: { type: "boolean", default: false },
  });
  if (positionals.length !== 1)
    throw new FerryError("E_BAD_ARGUMENT", "usage: ferry agent apply-bundle FILE --config AGENT.json [--host NAME] [--result FILE]");
  const config = loadAgentConfig(requireString(values.config, "--config"));
  const hostName = values.host ? assertHostName(values.host) : config.hostName;
  const log = createLogger("agent", { level: config.logLevel, destination: 2 });
  const { report } = await applyBundle({
    bundleFile: positionals[0] as string,
    config,
    hostName,
    log: log.child({ host: hostName, mode: "apply-bundle" }),
  });
  const text = `${JSON.stringify(report, null, 2)}\n`;
  if (values.result) writeFileAtomic(values.result, text, 0o644);
  createOutput(values.json).result(report, () =>
    report.success
      ? `${report.hostName}: ${report.phase}, running ${report.currentSystem} (bundle ${report.bundle.sequence})\n`
      : `${report.hostName}: ${report.phase}, running ${report.currentSystem || "nothing"} (bundle ${report.bundle.sequence})\n`,
  );
  if (!report.success) {
    process.stderr.write(`error ${report.errorCode}: ${report.errorMessage}\n`);
    return 1;
  }
  return 0;
}
