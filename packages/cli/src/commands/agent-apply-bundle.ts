import { assertHostName, assertReadable, createLogger, writeFileAtomic } from "@ferry/core";
import { applyBundle, loadAgentConfig } from "@ferry/agent";
import { parseVerb, requireString } from "../args.js";
import { createOutput } from "../output.js";
import { VERBS } from "../spec/index.js";

/** `ferry agent apply-bundle FILE --config AGENT.json [--host NAME] [--result FILE]`: logs go to stderr, the result to stdout and FILE. */
export async function applyBundleCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS["agent apply-bundle"], args);
  assertReadable(positionals[0] as string, "bundle");
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
