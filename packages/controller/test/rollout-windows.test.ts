// Maintenance windows at fixed instants: pure functions, no clock read.
import { describe, mock, test } from "node:test";
import cron from "node-cron";
import assert from "node:assert/strict";
import { FerryError } from "@ferry/core";
import { mayActivateNow, nextOpening, nextOpeningOf, validateWindow, windowIsOpen } from "../src/rollouts/windows.js";
import type { MaintenanceWindowRecord } from "../src/store/rollout-records.js";

const HOUR = 3_600_000;
const at = (iso: string): number => {
  const ms = Date.parse(iso);
  assert.ok(Number.isFinite(ms), iso);
  return ms;
};

function win(patch: Partial<MaintenanceWindowRecord>): MaintenanceWindowRecord {
  return { id: "w-1", hostName: "", tag: "", cron: "0 2 * * *", durationMs: 2 * HOUR, timezone: "UTC", ...patch };
}

function throwsBadArgument(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof FerryError, `expected a FerryError, got ${String(error)}`);
    assert.equal(error.code, "E_BAD_ARGUMENT");
    assert.match(error.message, pattern);
    return true;
  });
}

describe("windowIsOpen", () => {
  const cases: { name: string; window: Partial<MaintenanceWindowRecord>; now: string; open: boolean }[] = [
    // Five fields: daily at 02:00 UTC for two hours.
    { name: "five fields: open in the middle", window: {}, now: "2024-03-12T02:30:00Z", open: true },
    { name: "five fields: open at the opening minute", window: {}, now: "2024-03-12T02:00:00Z", open: true },
    { name: "five fields: open a second after opening", window: {}, now: "2024-03-12T02:00:01Z", open: true },
    { name: "five fields: open near the end", window: {}, now: "2024-03-12T03:59:59Z", open: true },
    { name: "five fields: closed a minute after the end", window: {}, now: "2024-03-12T04:01:00Z", open: false },
    { name: "five fields: closed a minute before opening", window: {}, now: "2024-03-12T01:59:00Z", open: false },
    { name: "five fields: closed a second before opening", window: {}, now: "2024-03-12T01:59:59Z", open: false },
    { name: "five fields: closed at noon", window: {}, now: "2024-03-12T12:00:00Z", open: false },
    // 2024-03-10 was a Sunday; a Sunday-only window for 3 hours.
    { name: "weekday field: open on Sunday", window: { cron: "0 22 * * 0", durationMs: 3 * HOUR }, now: "2024-03-10T23:00:00Z", open: true },
    { name: "weekday field: still open past midnight", window: { cron: "0 22 * * 0", durationMs: 3 * HOUR }, now: "2024-03-11T00:30:00Z", open: true },
    { name: "weekday field: closed on Monday night", window: { cron: "0 22 * * 0", durationMs: 3 * HOUR }, now: "2024-03-11T23:00:00Z", open: false },
    // Six fields: seconds. Opens at 02:00:30 for 10 seconds.
    { name: "six fields: closed a second before", window: { cron: "30 0 2 * * *", durationMs: 10_000 }, now: "2024-03-12T02:00:29Z", open: false },
    { name: "six fields: open at the second", window: { cron: "30 0 2 * * *", durationMs: 10_000 }, now: "2024-03-12T02:00:30Z", open: true },
    { name: "six fields: open 5 s in", window: { cron: "30 0 2 * * *", durationMs: 10_000 }, now: "2024-03-12T02:00:35Z", open: true },
    { name: "six fields: closed 11 s in", window: { cron: "30 0 2 * * *", durationMs: 10_000 }, now: "2024-03-12T02:00:41Z", open: false },
    { name: "six fields: closed a minute later", window: { cron: "30 0 2 * * *", durationMs: 10_000 }, now: "2024-03-12T02:01:35Z", open: false },
    // Every 15 minutes for 5 minutes.
    { name: "step expression: open", window: { cron: "*/15 * * * *", durationMs: 5 * 60_000 }, now: "2024-03-12T10:47:00Z", open: true },
    { name: "step expression: closed", window: { cron: "*/15 * * * *", durationMs: 5 * 60_000 }, now: "2024-03-12T10:41:00Z", open: false },
  ];
  for (const { name, window, now, open } of cases) {
    test(name, () => {
      assert.equal(windowIsOpen(win(window), at(now)), open);
    });
  }

  describe("time zones", () => {
    // "0 2 * * *" for 2 hours: 02:00-04:00 UTC; in Paris (UTC+1 in winter) 01:00-03:00 UTC.
    const cases: { now: string; utc: boolean; paris: boolean; newYork: boolean }[] = [
      { now: "2024-01-15T01:30:00Z", utc: false, paris: true, newYork: false },
      { now: "2024-01-15T02:30:00Z", utc: true, paris: true, newYork: false },
      { now: "2024-01-15T03:30:00Z", utc: true, paris: false, newYork: false },
      // 02:00 in New York (UTC-5 in winter) is 07:00 UTC.
      { now: "2024-01-15T07:30:00Z", utc: false, paris: false, newYork: true },
      // Summer time: Paris is UTC+2, so 02:00-04:00 Paris is 00:00-02:00 UTC.
      { now: "2024-07-15T00:30:00Z", utc: false, paris: true, newYork: false },
      { now: "2024-07-15T02:30:00Z", utc: true, paris: false, newYork: false },
    ];
    for (const { now, utc, paris, newYork } of cases) {
      test(`at ${now}: UTC ${utc ? "open" : "closed"}, Paris ${paris ? "open" : "closed"}, New York ${newYork ? "open" : "closed"}`, () => {
        assert.equal(windowIsOpen(win({ timezone: "UTC" }), at(now)), utc);
        assert.equal(windowIsOpen(win({ timezone: "Europe/Paris" }), at(now)), paris);
        assert.equal(windowIsOpen(win({ timezone: "America/New_York" }), at(now)), newYork);
      });
    }
  });

  test("a six-field window longer than the scan bound is refused rather than read as closed too early", () => {
    // Sundays at 02:00:00 UTC for 3 days: past the ~55 h a seconds-precision scan covers.
    assert.throws(() => validateWindow(win({ cron: "0 0 2 * * 0", durationMs: 72 * HOUR })), { code: "E_BAD_ARGUMENT" });
    assert.doesNotThrow(() => validateWindow(win({ cron: "0 2 * * 0", durationMs: 72 * HOUR })));
  });
});

describe("mayActivateNow", () => {
  const closed = at("2024-03-12T12:00:00Z");
  const open = at("2024-03-12T02:30:00Z");
  const windows: MaintenanceWindowRecord[] = [win({ id: "w-db", tag: "db" }), win({ id: "w-web-1", hostName: "web-1", cron: "0 12 * * *", durationMs: HOUR })];

  const cases: { name: string; host: string; tags: string[]; windows: MaintenanceWindowRecord[]; now: number; allowed: boolean }[] = [
    { name: "no window at all: always allowed", host: "db-1", tags: ["db"], windows: [], now: closed, allowed: true },
    { name: "no applicable window: allowed while other windows are closed", host: "app-1", tags: ["app"], windows, now: closed, allowed: true },
    { name: "tag window applies to a tagged host: closed", host: "db-1", tags: ["prod", "db"], windows, now: closed, allowed: false },
    { name: "tag window applies to a tagged host: open", host: "db-1", tags: ["db"], windows, now: open, allowed: true },
    { name: "tag window ignores a host without the tag", host: "db-1", tags: ["prod"], windows, now: closed, allowed: true },
    { name: "host window: open", host: "web-1", tags: [], windows, now: closed, allowed: true },
    { name: "host window: closed", host: "web-1", tags: [], windows, now: open, allowed: false },
    { name: "host window ignores another host", host: "web-2", tags: [], windows, now: open, allowed: true },
    // Both apply; either being open is enough.
    { name: "host and tag windows: the tag window open suffices", host: "web-1", tags: ["db"], windows, now: open, allowed: true },
    { name: "host and tag windows: the host window open suffices", host: "web-1", tags: ["db"], windows, now: closed, allowed: true },
    {
      name: "host and tag windows: both closed",
      host: "web-1",
      tags: ["db"],
      windows,
      now: at("2024-03-12T08:00:00Z"),
      allowed: false,
    },
  ];
  for (const { name, host, tags, windows, now, allowed } of cases) {
    test(name, () => {
      assert.equal(mayActivateNow(host, tags, windows, now), allowed);
    });
  }

  test("a tag window with an empty host name does not match hosts by name", () => {
    // The tag window's hostName is "", which no host is named; only the tag counts.
    assert.equal(mayActivateNow("db-1", [], [win({ tag: "db" })], closed), true);
  });
});

describe("nextOpening", () => {
  const WEEK = 7 * 24 * HOUR;
  const cases: { name: string; window: Partial<MaintenanceWindowRecord>; now: string; next: string | null }[] = [
    { name: "five fields: later today", window: {}, now: "2024-03-12T00:10:00Z", next: "2024-03-12T02:00:00Z" },
    { name: "five fields: tomorrow, once today's opening passed", window: {}, now: "2024-03-12T02:00:00Z", next: "2024-03-13T02:00:00Z" },
    { name: "five fields: from mid-minute", window: {}, now: "2024-03-12T01:59:30Z", next: "2024-03-12T02:00:00Z" },
    { name: "weekday field: the coming Sunday", window: { cron: "0 22 * * 0" }, now: "2024-03-11T12:00:00Z", next: "2024-03-17T22:00:00Z" },
    { name: "six fields: at the second", window: { cron: "30 0 2 * * *" }, now: "2024-03-12T02:00:10Z", next: "2024-03-12T02:00:30Z" },
    { name: "six fields: the next day once passed", window: { cron: "30 0 2 * * *" }, now: "2024-03-12T02:00:30Z", next: "2024-03-13T02:00:30Z" },
    {
      name: "time zone: 02:00 in Paris is 01:00 UTC in winter",
      window: { timezone: "Europe/Paris" },
      now: "2024-01-15T00:00:00Z",
      next: "2024-01-15T01:00:00Z",
    },
    { name: "beyond the horizon: none", window: { cron: "0 2 1 1 *" }, now: "2024-03-12T00:00:00Z", next: null },
  ];
  for (const { name, window, now, next } of cases) {
    test(name, () => {
      assert.equal(nextOpening(win(window), at(now), WEEK), next === null ? 0 : at(next));
    });
  }

  test("several windows: the earliest opening", () => {
    const windows = [win({ cron: "0 2 * * *" }), win({ cron: "0 1 * * *" }), win({ cron: "0 2 1 1 *" })];
    assert.equal(nextOpeningOf(windows, at("2024-03-12T00:00:00Z"), WEEK), at("2024-03-12T01:00:00Z"));
    assert.equal(nextOpeningOf([], at("2024-03-12T00:00:00Z"), WEEK), 0);
  });

  test("a week is scanned a minute at a time: a six-field schedule costs one evaluation per minute, not one per second", () => {
    let evaluations = 0;
    const createTask = cron.createTask.bind(cron);
    const counting = mock.method(cron, "createTask", (...args: Parameters<typeof cron.createTask>) => {
      const task = createTask(...args);
      const match = task.match.bind(task);
      task.match = (date: Date) => {
        evaluations += 1;
        return match(date);
      };
      return task;
    });
    try {
      assert.equal(nextOpening(win({ cron: "0 0 2 1 1 *", timezone: "Europe/Paris" }), at("2024-03-12T00:00:00Z"), WEEK), 0);
    } finally {
      counting.mock.restore();
    }
    assert.equal(evaluations, WEEK / 60_000 + 1);
  });
});

describe("validateWindow", () => {
  const good: Pick<MaintenanceWindowRecord, "cron" | "durationMs" | "timezone">[] = [
    { cron: "0 2 * * *", durationMs: 2 * HOUR, timezone: "" },
    { cron: "0 2 * * *", durationMs: 1, timezone: "UTC" },
    { cron: "30 0 2 * * *", durationMs: 10_000, timezone: "Europe/Paris" },
    { cron: "*/15 1-5 * * 1-5", durationMs: 60_000, timezone: "America/New_York" },
  ];
  for (const window of good) {
    test(`accepts ${JSON.stringify(window)}`, () => {
      assert.doesNotThrow(() => validateWindow(window));
    });
  }

  const bad: { name: string; window: Pick<MaintenanceWindowRecord, "cron" | "durationMs" | "timezone">; pattern: RegExp }[] = [
    { name: "garbage cron", window: { cron: "every night", durationMs: HOUR, timezone: "UTC" }, pattern: /not a valid cron expression/ },
    { name: "minute out of range", window: { cron: "61 2 * * *", durationMs: HOUR, timezone: "UTC" }, pattern: /not a valid cron expression/ },
    { name: "seven fields", window: { cron: "0 0 2 * * * *", durationMs: HOUR, timezone: "UTC" }, pattern: /not a valid cron expression/ },
    { name: "empty cron", window: { cron: "", durationMs: HOUR, timezone: "UTC" }, pattern: /not a valid cron expression/ },
    { name: "zero duration", window: { cron: "0 2 * * *", durationMs: 0, timezone: "UTC" }, pattern: /positive duration/ },
    { name: "negative duration", window: { cron: "0 2 * * *", durationMs: -HOUR, timezone: "UTC" }, pattern: /positive duration/ },
    { name: "NaN duration", window: { cron: "0 2 * * *", durationMs: Number.NaN, timezone: "UTC" }, pattern: /positive duration/ },
    { name: "unknown time zone", window: { cron: "0 2 * * *", durationMs: HOUR, timezone: "Mars/Olympus_Mons" }, pattern: /unknown time zone/ },
  ];
  for (const { name, window, pattern } of bad) {
    test(`refuses ${name} with E_BAD_ARGUMENT`, () => {
      throwsBadArgument(() => validateWindow(window), pattern);
    });
  }
});
