import { outputTail, type CommandRunner } from "@ferry/core";
import type { HealthCheck } from "./config.js";
import { requestHttp } from "./http-request.js";

/** How much of an HTTP check's body bodyContains searches: a health page, not a download. */
export const HTTP_CHECK_BODY_BYTES = 1024 * 1024;

export interface CheckOutcome {
  /** Stable name for comparing runs, e.g. "systemd:nginx.service". */
  name: string;
  passed: boolean;
  detail: string;
}

export function checkName(check: HealthCheck): string {
  switch (check.type) {
    case "systemd":
      return `systemd:${check.units.join(",")}`;
    case "http":
      return `http:${check.url}`;
    case "command":
      return `command:${check.argv.join(" ")}`;
  }
}

async function runOne(check: HealthCheck, runner: CommandRunner): Promise<CheckOutcome> {
  const name = checkName(check);
  try {
    switch (check.type) {
      case "systemd": {
        const result = await runner.run({ argv: ["systemctl", "is-active", ...check.units], timeoutMs: 15_000 });
        return { name, passed: result.exitCode === 0, detail: outputTail(result, 2000) };
      }
      case "http": {
        const response = await requestHttp(new URL(check.url), { method: "GET", timeoutMs: check.timeout * 1000, maxBodyBytes: HTTP_CHECK_BODY_BYTES });
        const statusOk = response.statusCode === check.expectStatus;
        const bodyOk = !check.bodyContains || response.body.includes(check.bodyContains);
        const lacks = bodyOk
          ? ""
          : `, ${response.truncated ? `first ${HTTP_CHECK_BODY_BYTES} bytes of the body lack` : "body lacks"} ${JSON.stringify(check.bodyContains)}`;
        return { name, passed: statusOk && bodyOk, detail: `HTTP ${response.statusCode}${lacks}` };
      }
      case "command": {
        const result = await runner.run({ argv: check.argv, timeoutMs: check.timeout * 1000, purpose: "health-check" });
        const how = result.timedOut ? "timed out" : `exit ${result.exitCode ?? result.signal}`;
        return { name, passed: result.exitCode === 0 && !result.timedOut, detail: `${how}\n${outputTail(result, 2000)}`.trim() };
      }
    }
  } catch (error) {
    return { name, passed: false, detail: error instanceof Error ? error.message : String(error) };
  }
}

export function runHealthChecks(checks: readonly HealthCheck[], runner: CommandRunner): Promise<CheckOutcome[]> {
  return Promise.all(checks.map((check) => runOne(check, runner)));
}

/**
 * Which failures count against a new system: a check that already failed
 * before the switch is the old system's problem, unless it is strict.
 */
export function countedFailures(checks: readonly HealthCheck[], outcomes: readonly CheckOutcome[], failingBefore: readonly string[]): CheckOutcome[] {
  return outcomes.filter((outcome, index) => !outcome.passed && ((checks[index] as HealthCheck).strict || !failingBefore.includes(outcome.name)));
}

/**
 * Checks that failed before the switch and fail still, yet were not counted:
 * the service was already broken (or the check is wrong). Reported with every
 * result, because they prove nothing about the new system.
 */
export function failingBeforeAndAfter(outcomes: readonly CheckOutcome[], failingBefore: readonly string[]): string[] {
  return outcomes.filter((outcome) => !outcome.passed && failingBefore.includes(outcome.name)).map((outcome) => outcome.name);
}

export function describeOutcomes(outcomes: readonly CheckOutcome[]): string {
  return outcomes
    .map((outcome) => `${outcome.passed ? "ok  " : "FAIL"} ${outcome.name}${outcome.detail ? `\n     ${outcome.detail.replaceAll("\n", "\n     ")}` : ""}`)
    .join("\n");
}
