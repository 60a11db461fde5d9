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

/** The windows that govern a host: its own, and those of its tags. */
export function windowsFor(hostName: string, tags: readonly string[], windows: readonly MaintenanceWindowRecord[]): MaintenanceWindowRecord[] {
  return windows.filter((window) => window.hostName === hostName || (window.tag !== "" && tags.includes(window.tag)));
}

/** A host may activate when no window applies to it, or one that applies is open. */
export function mayActivateNow(hostName: string, tags: readonly string[], windows: readonly MaintenanceWindowRecord[], nowMs: number): boolean {
  const applicable = windowsFor(hostName, tags, windows);
  return applicable.length === 0 || applicable.some((window) => windowIsOpen(window, nowMs));
}

const MINUTE_MS = 60_000;

/**
 * The first instant after `nowMs` at which `window` opens, looking at most
 * `horizonMs` ahead; 0 when it does not open in that time. Minutes are scanned
 * with the expression's minute-and-coarser fields, and only a matching minute
 * is searched second by second, so a six-field expression costs no more than
 * a five-field one.
 */
export function nextOpening(window: Pick<MaintenanceWindowRecord, "cron" | "timezone">, nowMs: number, horizonMs: number): number {
  const fields = window.cron.trim().split(/\s+/);
  const options = window.timezone ? { timezone: window.timezone } : {};
  const full = cron.createTask(window.cron, () => undefined, options);
  const minutes = fields.length >= 6 ? cron.createTask(fields.slice(1).join(" "), () => undefined, options) : full;
  try {
    const first = Math.floor(nowMs / MINUTE_MS) * MINUTE_MS;
    for (let minute = first; minute <= nowMs + horizonMs; minute += MINUTE_MS) {
      if (!minutes.match(new Date(minute))) continue;
      if (fields.length < 6) {
        if (minute > nowMs) return minute;
        continue;
      }
      for (let instant = Math.max(minute, Math.floor(nowMs / 1000) * 1000 + 1000); instant < minute + MINUTE_MS; instant += 1000) {
        if (full.match(new Date(instant))) return instant;
      }
    }
    return 0;
  } finally {
    void full.destroy();
    if (minutes !== full) void minutes.destroy();
  }
}

/** The earliest next opening among a host's windows; 0 when none opens within `horizonMs`. */
export function nextOpeningOf(windows: readonly MaintenanceWindowRecord[], nowMs: number, horizonMs: number): number {
  const openings = windows.map((window) => nextOpening(window, nowMs, horizonMs)).filter((at) => at > 0);
  return openings.length === 0 ? 0 : Math.min(...openings);
}
