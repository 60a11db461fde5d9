import cron from "node-cron";
import { FerryError } from "@ferry/core";
import type { MaintenanceWindowRecord } from "../store/rollout-records.js";

/** Bounds the look-back; validateWindow refuses windows longer than it covers. */
const MAX_STEPS = 200_000;

function stepOf(expression: string): number {
  return expression.trim().split(/\s+/).length >= 6 ? 1000 : 60_000;
}

/**
 * A window opens at each time its cron expression matches and stays open for
 * its duration. It is open now when the expression matched at some instant in
 * [now - duration, now]; five-field expressions match on whole minutes,
 * six-field ones on seconds.
 */
export function windowIsOpen(window: Pick<MaintenanceWindowRecord, "cron" | "durationMs" | "timezone">, nowMs: number): boolean {
  const task = cron.createTask(window.cron, () => undefined, window.timezone ? { timezone: window.timezone } : {});
  try {
    const stepMs = stepOf(window.cron);
    let instant = Math.floor(nowMs / stepMs) * stepMs;
    const earliest = nowMs - window.durationMs;
    for (let steps = 0; instant >= earliest && steps < MAX_STEPS; steps++, instant -= stepMs) {
      if (task.match(new Date(instant))) return true;
    }
    return false;
  } finally {
    void task.destroy();
  }
}

export function validateWindow(window: Pick<MaintenanceWindowRecord, "cron" | "durationMs" | "timezone">): void {
  if (!cron.validate(window.cron)) throw new FerryError("E_BAD_ARGUMENT", `not a valid cron expression: ${JSON.stringify(window.cron)}`);
  if (!(window.durationMs > 0)) throw new FerryError("E_BAD_ARGUMENT", "a maintenance window needs a positive duration");
  const longest = MAX_STEPS * stepOf(window.cron);
  if (window.durationMs > longest) {
    throw new FerryError("E_BAD_ARGUMENT", `a window of this cron precision may last at most ${Math.floor(longest / 3_600_000)} h`);
  }
  if (window.timezone) {
    try {
      new Intl.DateTimeFormat("en", { timeZone: window.timezone });
    } catch {
      throw new FerryError("E_BAD_ARGUMENT", `unknown time zone ${JSON.stringify(window.timezone)}`);
    }
  }
}

/** A host may activate when no window applies to it, or one that applies is open. */
export function mayActivateNow(hostName: string, tags: readonly string[], windows: readonly MaintenanceWindowRecord[], nowMs: number): boolean {
  const applicable = windows.filter((window) => window.hostName === hostName || (window.tag !== "" && tags.includes(window.tag)));
  return applicable.length === 0 || applicable.some((window) => windowIsOpen(window, nowMs));
}
