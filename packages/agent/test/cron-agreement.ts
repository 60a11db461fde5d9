// The property behind cron-schedule.test.ts, in a module of its own so that
// the test can also run it in a process with another time zone.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import fc from "fast-check";
import { parseCronSchedule } from "../src/cron-schedule.js";

interface NodeCronTask {
  match(date: Date): boolean;
  destroy(): unknown;
}
const nodeCron = createRequire(import.meta.url)("node-cron") as { createTask(expression: string, run: () => void): NodeCronTask };

const HOUR = 3_600_000;
const offsetAt = (ms: number): number => new Date(ms).getTimezoneOffset();

/** Whether the clock changes (daylight saving) between `from` and `to`, give or take an hour. */
function clockChangesBetween(from: number, to: number): boolean {
  for (let at = from - HOUR; at < to + HOUR; at += HOUR) if (offsetAt(at) !== offsetAt(at + HOUR)) return true;
  return false;
}

/**
 * Whatever parseCronSchedule reads fires exactly when node-cron matches: at
 * its next run, and at no minute before. Next to a clock change the two
 * differ on purpose (see daylightSavingCases), so those runs are skipped.
 */
export function agreesWithNodeCron(): void {
  const item = (min: number, max: number) =>
    fc.oneof(
      fc.constant("*"),
      fc.integer({ min, max }).map(String),
      fc.tuple(fc.integer({ min, max }), fc.integer({ min, max })).map(([a, b]) => `${Math.min(a, b)}-${Math.max(a, b)}`),
      fc.integer({ min: 1, max: 12 }).map((step) => `*/${step}`),
    );
  const field = (min: number, max: number) => fc.array(item(min, max), { minLength: 1, maxLength: 3 }).map((items) => items.join(","));
  const expression = fc
    .tuple(field(0, 59), field(0, 23), field(1, 28), field(1, 12), field(0, 6), fc.boolean())
    .map(([minute, hour, day, month, weekday, dayOfMonth]) => `${minute} ${hour} ${dayOfMonth ? day : "*"} ${month} ${dayOfMonth ? "*" : weekday}`);
  // Minute-aligned instants across several years (leap days included), and close to the 2026 daylight-saving changes of Europe and North America.
  const minutesBetween = (from: number, to: number) => fc.integer({ min: from / 60_000, max: to / 60_000 }).map((minutes) => new Date(minutes * 60_000));
  const day = 86_400_000;
  const instant = fc.oneof(
    minutesBetween(Date.UTC(2025, 0, 1), Date.UTC(2031, 0, 1)),
    ...[Date.UTC(2026, 2, 8, 7), Date.UTC(2026, 2, 29, 1), Date.UTC(2026, 9, 25, 1), Date.UTC(2026, 10, 1, 6)].map((change) =>
      minutesBetween(change - day, change + day),
    ),
  );
  fc.assert(
    fc.property(expression, instant, (text, after) => {
      const schedule = parseCronSchedule(text);
      assert.ok(schedule, `${text} should be read`);
      // Days 1-28 of every month: each expression matches some date.
      const next = schedule.next(after);
      assert.ok(next, `${text} has no next run after ${after.toString()}`);
      assert.ok(next.getTime() > after.getTime());
      const horizon = Math.min(next.getTime(), after.getTime() + 2 * 86_400_000);
      if (clockChangesBetween(after.getTime(), horizon) || clockChangesBetween(next.getTime() - HOUR, next.getTime())) return;
      const task = nodeCron.createTask(text, () => undefined);
      try {
        assert.ok(task.match(next), `${text}: node-cron does not match ${next.toString()}`);
        // No minute in between matches (checked over at most two days).
        for (let minute = after.getTime() + 60_000; minute < horizon; minute += 60_000) {
          assert.ok(!task.match(new Date(minute)), `${text}: node-cron matches ${new Date(minute).toString()} before ${next.toString()}`);
        }
      } finally {
        task.destroy();
      }
    }),
    { numRuns: 150 },
  );
}

/**
 * What the schedule does where the clock changes, in America/New_York: like
 * cron daemons, a local time the fall-back repeats runs once, and one the
 * spring-forward skips runs when the clock has jumped (node-cron would run the
 * first twice and skip the second).
 */
export function daylightSavingCases(): void {
  assert.equal(process.env.TZ, "America/New_York");
  const next = (expression: string, after: string): string | undefined => parseCronSchedule(expression)?.next(new Date(after))?.toISOString();
  // 2026-03-08: 02:00 EST becomes 03:00 EDT, so 02:30 does not exist that night.
  assert.equal(next("30 2 * * *", "2026-03-08T06:00:00Z"), "2026-03-08T07:30:00.000Z", "02:30 runs at 03:30 EDT");
  assert.equal(next("30 2 * * *", "2026-03-08T07:30:00Z"), "2026-03-09T06:30:00.000Z", "and the next night at 02:30 EDT");
  // 2026-11-01: 02:00 EDT becomes 01:00 EST, so 01:00-01:59 happens twice.
  assert.equal(next("30 1 * * *", "2026-11-01T05:00:00Z"), "2026-11-01T05:30:00.000Z", "01:30 EDT");
  assert.equal(next("30 1 * * *", "2026-11-01T05:30:00Z"), "2026-11-02T06:30:00.000Z", "not again at 01:30 EST");
  assert.equal(next("*/20 * * * *", "2026-11-01T05:59:00Z"), "2026-11-01T07:00:00.000Z", "every 20 minutes: the repeated hour is not run again");
}
