// The agent's own reading of cron expressions (the GC schedule), checked by
// hand on known dates and against node-cron's matcher on random expressions
// and instants: whatever it reads must fire exactly when node-cron would.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { parseCronSchedule } from "../src/cron-schedule.js";
import { parseAgentConfig } from "../src/config.js";
import { agreesWithNodeCron } from "./cron-agreement.js";

const local = (...parts: [number, number, number, number?, number?, number?]): Date => new Date(...(parts as [number, number, number, number, number, number]));

function nextAfter(expression: string, after: Date): Date | undefined {
  const schedule = parseCronSchedule(expression);
  assert.ok(schedule, `${expression} should be read`);
  return schedule.next(after);
}

describe("parseCronSchedule", () => {
  test("the default schedule runs at 03:30 local time, the next day once it has passed", () => {
    assert.deepEqual(nextAfter("30 3 * * *", local(2026, 10, 22, 14, 0)), local(2026, 10, 23, 3, 30));
    assert.deepEqual(nextAfter("30 3 * * *", local(2026, 10, 22, 3, 29, 59)), local(2026, 10, 22, 3, 30));
    // Strictly after: the instant itself is not the next run.
    assert.deepEqual(nextAfter("30 3 * * *", local(2026, 10, 22, 3, 30)), local(2026, 10, 23, 3, 30));
  });

  test("steps, ranges, lists, names and a seconds field", () => {
    assert.deepEqual(nextAfter("*/15 * * * *", local(2026, 0, 1, 10, 7)), local(2026, 0, 1, 10, 15));
    assert.deepEqual(nextAfter("0 9-17/4 * * mon-fri", local(2026, 10, 21, 12, 0)), local(2026, 10, 23, 9, 0), "Saturday noon: Monday 09:00");
    assert.deepEqual(nextAfter("0 0 1 jan,JUL *", local(2026, 1, 10)), local(2026, 6, 1));
    assert.deepEqual(nextAfter("0 12 * * 7", local(2026, 10, 22, 13, 0)), local(2026, 10, 29, 12, 0), "7 is Sunday");
    assert.deepEqual(nextAfter("0 12 * * sunday", local(2026, 10, 22, 11, 0)), local(2026, 10, 22, 12, 0));
    assert.deepEqual(nextAfter("*/10 * * * * *", local(2026, 0, 1, 0, 0, 5)), local(2026, 0, 1, 0, 0, 10));
    assert.deepEqual(nextAfter("0 0 29 2 *", local(2026, 10, 22)), local(2028, 1, 29), "the next 29 February");
  });

  test("an expression no date matches never runs", () => {
    assert.equal(nextAfter("0 0 30 2 *", local(2026, 0, 1)), undefined);
  });

  test("what is left to node-cron, or is no cron at all, is not read", () => {
    for (const expression of [
      "@daily",
      "0 0 L * *",
      "0 0 * * 1#2",
      "0 0 1 * 1",
      "5/10 * * * *",
      "61 * * * *",
      "* * * *",
      "* * * * * * *",
      "0 24 * * *",
      "",
      "x y z a b",
    ]) {
      assert.equal(parseCronSchedule(expression), undefined, expression);
    }
  });

  test("fires exactly when node-cron matches, on random expressions and instants (this machine's zone)", () => agreesWithNodeCron());

  // In a process of its own: the zone is read once, by Date and by Intl alike.
  test("the same where daylight saving moves local time, and what it does at the changes (America/New_York)", { timeout: 60_000 }, () => {
    const script = `import(${JSON.stringify(new URL("./cron-agreement.ts", import.meta.url).href)}).then((m) => { m.daylightSavingCases(); m.agreesWithNodeCron(); })`;
    const run = spawnSync(process.execPath, ["--import", "tsx", "-e", script], {
      env: { ...process.env, TZ: "America/New_York" },
      encoding: "utf8",
      timeout: 55_000,
    });
    assert.equal(run.status, 0, run.stderr);
  });
});

describe("gcSchedule in the agent configuration", () => {
  const base = { hostName: "web-1", trustedPublicKeys: ["cache-1:AAAA"] };

  test("an expression either reader accepts is taken; anything else is E_BAD_CONFIG naming it", () => {
    for (const gcSchedule of ["30 3 * * *", "@daily", "0 0 L * *", ""]) assert.equal(parseAgentConfig({ ...base, gcSchedule }).gcSchedule, gcSchedule);
    assert.throws(
      () => parseAgentConfig({ ...base, gcSchedule: "every night" }),
      (error: Error & { code?: string }) => error.code === "E_BAD_CONFIG" && /gcSchedule "every night" is not a cron expression/.test(error.message),
    );
  });
});
