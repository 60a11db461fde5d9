import { accessSync, constants, statSync } from "node:fs";
import { FerryError, outputTail, type CommandRunner } from "@ferry/core";
import type { HealthCheck } from "./config.js";
import { checkName } from "./health-checks.js";

/**
 * A health check that cannot run fails before the switch as well as after
 * it; the baseline rule then ignores it, and rollback is silently off. So a
 * check that cannot run is a configuration error, found here: the parts that
 * need only the configuration when it is parsed, the parts that need the
 * machine (files, systemd) when the agent starts or `check-config` runs.
 */
export interface CheckProblem {
  /** Position in healthChecks, as the configuration file lists them. */
  index: number;
  name: string;
  reason: string;
}

/** Characters systemctl would read as an option or a path, or that no unit name holds. */
const UNIT_NAME = /^[^-/\s][^/\s]*$/;
const SYSTEMCTL_TIMEOUT_MS = 15_000;

function staticReasons(check: HealthCheck): string[] {
  switch (check.type) {
    case "command": {
      const program = check.argv[0] ?? "";
      if (program.startsWith("/")) return [];
      return [
        `argv[0] ${JSON.stringify(program)} is not an absolute path; the agent runs no shell and searches no PATH (write e.g. "/bin/sh" or a store path)`,
      ];
    }
    case "http": {
      let url: URL;
      try {
        url = new URL(check.url);
      } catch {
        return [`url ${JSON.stringify(check.url)} is not a valid URL`];
      }
      if (url.protocol !== "http:" && url.protocol !== "https:") return [`url ${JSON.stringify(check.url)} is not http:// or https://`];
      return [];
    }
    case "systemd":
      return check.units.filter((unit) => !UNIT_NAME.test(unit)).map((unit) => `${JSON.stringify(unit)} is not a systemd unit name`);
  }
}

/** Problems visible in the configuration alone: run when it is parsed. */
export function staticCheckProblems(checks: readonly HealthCheck[]): CheckProblem[] {
  return checks.flatMap((check, index) => staticReasons(check).map((reason) => ({ index, name: checkName(check), reason })));
}

function programReason(program: string): string | undefined {
  let stats;
  try {
    stats = statSync(program);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === "ENOENT" || code === "ENOTDIR" ? `program ${program} does not exist` : `program ${program} cannot be read (${code ?? "error"})`;
  }
  if (!stats.isFile()) return `program ${program} is not a file`;
  try {
    accessSync(program, constants.X_OK);
  } catch {
    return `program ${program} is not executable`;
  }
  return undefined;
}

async function unitReasons(units: readonly string[], runner: CommandRunner): Promise<string[]> {
  const reasons: string[] = [];
  for (const unit of units) {
    let result;
    try {
      result = await runner.run({ argv: ["systemctl", "show", "--property=LoadState", "--value", "--", unit], timeoutMs: SYSTEMCTL_TIMEOUT_MS });
    } catch (error) {
      // Our choice: no systemd means a systemd check can never pass, so it is refused like any other check that cannot run.
      return [`systemctl cannot run on this machine (${(error as Error).message}); without systemd a systemd check never passes: use a command or http check`];
    }
    if (result.exitCode !== 0) {
      const why = outputTail(result, 300).split("\n")[0] || `exit ${result.exitCode ?? result.signal}`;
      return [`systemd did not answer for ${unit} (${why}); without a running systemd a systemd check never passes: use a command or http check`];
    }
    const state = result.stdout.trim();
    if (state === "not-found") reasons.push(`unit ${unit} is not known to systemd (LoadState=not-found); check its name with systemctl list-unit-files`);
    else if (state === "masked") reasons.push(`unit ${unit} is masked, so it never runs`);
  }
  return reasons;
}

/** Problems only the machine can show: a missing program, a unit systemd does not know. */
export async function machineCheckProblems(checks: readonly HealthCheck[], runner: CommandRunner): Promise<CheckProblem[]> {
  const problems: CheckProblem[] = [];
  for (const [index, check] of checks.entries()) {
    let reasons: string[] = [];
    if (check.type === "command") reasons = [programReason(check.argv[0] ?? "")].filter((reason): reason is string => reason !== undefined);
    else if (check.type === "systemd") reasons = await unitReasons(check.units, runner);
    problems.push(...reasons.map((reason) => ({ index, name: checkName(check), reason })));
  }
  return problems;
}

export function describeCheckProblems(problems: readonly CheckProblem[]): string {
  const shown = (name: string) => (name.length > 80 ? `${name.slice(0, 79)}…` : name);
  return problems.map((problem) => `healthChecks[${problem.index}] (${shown(problem.name)}): ${problem.reason}`).join("; ");
}

/** Refuses health checks this machine cannot run (E_BAD_CONFIG): agent start-up and `ferry agent check-config`. */
export async function assertChecksRunnable(checks: readonly HealthCheck[], runner: CommandRunner): Promise<void> {
  const problems = [...staticCheckProblems(checks), ...(await machineCheckProblems(checks, runner))].sort((a, b) => a.index - b.index);
  if (problems.length === 0) return;
  throw new FerryError(
    "E_BAD_CONFIG",
    `health checks that cannot run (each would fail before the switch too and silently turn rollback off): ${describeCheckProblems(problems)}`,
  );
}
