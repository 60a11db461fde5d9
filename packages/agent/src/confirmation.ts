import type { CommandRunner, Logger } from "@ferry/core";
import { FerryError } from "@ferry/core";
import type { HealthCheck } from "./config.js";
import { countedFailures, describeOutcomes, failingBeforeAndAfter, runHealthChecks, type CheckOutcome } from "./health-checks.js";

export interface ConfirmationDeps {
  checks: readonly HealthCheck[];
  runner: CommandRunner;
  log: Logger;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  /** Round trip with the controller; undefined when there is no controller (standalone apply). */
  heartbeat: ((timeoutMs: number) => Promise<boolean>) | undefined;
  /** Told of each attempt's check outcomes (metrics). */
  onChecks?: (outcomes: readonly CheckOutcome[]) => void;
}

/** How the checks judged the new system once it was confirmed. */
export interface Confirmation {
  report: string;
  checksRun: number;
  failingBeforeAndAfter: string[];
}

const RETRY_INTERVAL_MS = 2000;
const HEARTBEAT_TIMEOUT_MS = 5000;

/**
 * Resolves when the new system is healthy and can reach the controller, both
 * before `deadlineMs`; throws E_HEALTH_CHECK_FAILED or E_CONFIRM_TIMEOUT with
 * the evidence otherwise. Checks are retried: services often need a few
 * seconds after a switch.
 */
export async function confirmNewSystem(
  deps: ConfirmationDeps,
  deadlineMs: number,
  failingBefore: readonly string[],
  requireHeartbeat: boolean,
): Promise<Confirmation> {
  let lastReport = "";
  let checksPassed = false;
  let heartbeatPassed = !requireHeartbeat;
  for (let attempt = 1; ; attempt++) {
    const remaining = deadlineMs - deps.now();
    if (remaining <= 0) break;
    const outcomes = await runHealthChecks(deps.checks, deps.runner);
    deps.onChecks?.(outcomes);
    const counted = countedFailures(deps.checks, outcomes, failingBefore);
    checksPassed = counted.length === 0;
    lastReport = describeOutcomes(outcomes);
    if (requireHeartbeat && !heartbeatPassed) {
      const heartbeat = deps.heartbeat;
      heartbeatPassed = heartbeat !== undefined && (await heartbeat(Math.min(HEARTBEAT_TIMEOUT_MS, Math.max(1, deadlineMs - deps.now()))));
    }
    deps.log.debug({ attempt, checksPassed, heartbeatPassed, counted: counted.map((outcome) => outcome.name) }, "confirmation attempt");
    if (checksPassed && heartbeatPassed) {
      return { report: lastReport, checksRun: outcomes.length, failingBeforeAndAfter: failingBeforeAndAfter(outcomes, failingBefore) };
    }
    await deps.sleep(Math.min(RETRY_INTERVAL_MS, Math.max(0, deadlineMs - deps.now())));
  }
  if (!checksPassed)
    throw new FerryError("E_HEALTH_CHECK_FAILED", "health checks failed on the new system until the confirmation deadline", { output: lastReport });
  throw new FerryError("E_CONFIRM_TIMEOUT", "no heartbeat round trip with the controller from the new system before the confirmation deadline", {
    output: lastReport,
  });
}
