// The live view rendered as text, at the widths people watch it in (a
// 60-column tmux split, a 110-column window), read the way a person would.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import stringWidth from "string-width";
import type { Rollout } from "@ferry/protocol";
import { categoryOf, countHosts, isDone, isFinished } from "../src/rollout-states.js";
import { bar, renderRollout } from "../src/rollout-view.js";
import { GATED, MIXED, NOW, PAUSING, RUNNING, host, rollout } from "./rollout-fixtures.js";

const WIDTHS = [60, 110] as const;
const SCENES: Record<string, Rollout> = { mixed: MIXED, running: RUNNING, pausing: PAUSING, gated: GATED };

function view(r: Rollout, width: number, maxLines?: number): string[] {
  return renderRollout(r, { width, now: NOW, ...(maxLines === undefined ? {} : { maxLines }) });
}

/** The number before a word in the summary line(s), e.g. "2 failed" → 2; 0 when the word is absent. */
function summaryCount(lines: string[], word: string): number {
  const summary = lines.slice(lines.findIndex((line) => / hosts: /.test(line))).join(" ");
  const match = new RegExp(`(\\d+) ${word}\\b`).exec(summary.split(/canary|wave 1 /)[0] ?? "");
  return match ? Number(match[1]) : 0;
}

describe("rollout live view", () => {
  for (const width of WIDTHS) {
    for (const [name, scene] of Object.entries(SCENES)) {
      test(`${name} at ${width} columns: no line is wider than the terminal, and every host is named`, () => {
        const lines = view(scene, width);
        for (const line of lines) assert.ok(stringWidth(line) <= width, `${stringWidth(line)} > ${width}: ${JSON.stringify(line)}`);
        const text = lines.join("\n");
        for (const h of scene.hosts) assert.match(text, new RegExp(`\\b${h.name}\\b`), `${h.name} named`);
        assert.doesNotMatch(text, /\u001b/, "the view itself holds no escape codes");
      });
    }
  }

  test("the 60-column view of an aborted rollout mid-revert, as a person sees it", () => {
    assert.deepEqual(view(MIXED, 60), [
      "rollout r-mhz3k1c0-5f2a9e · aborted · wave 2/4 · 3m12s ·",
      "env production",
      "aborted: 2 of 3 finished hosts failed: web-4",
      "E_HEALTH_CHECK_FAILED, web-5 E_ACTIVATION_FAILED · waiting",
      "for 2 host(s) still switching",
      "  11 hosts: 1 confirmed · 1 activating · 1 reverting ·",
      "  2 failed · 1 skipped · 5 not started",
      "  canary  [##########] 1/1 done",
      "      confirmed web-1",
      "  wave 2  [xxxxxx~~..] 3/4 done · 2 failed",
      "      reverting web-2 · activating web-3 ·",
      "      failed web-5 (E_ACTIVATION_FAILED) ·",
      "      rolled-back web-4 (E_HEALTH_CHECK_FAILED)",
      "  wave 3  [..........] 0/4 done",
      "      prefetched web-6, web-7, web-9 · waiting-window web-8",
      "  wave 4  [-----.....] 1/2 done",
      "      prefetched db-2 · skipped db-1 (E_SUPERSEDED)",
    ]);
  });

  for (const width of WIDTHS) {
    test(`counts agree at ${width} columns: a reverting host is reverting, and the summary's failures are the waves' failures`, () => {
      const lines = view(MIXED, width);
      assert.equal(summaryCount(lines, "reverting"), 1);
      assert.equal(summaryCount(lines, "activating"), 1, "web-2 reverting is not counted as activating");
      assert.equal(summaryCount(lines, "failed"), 2, "failed and rolled-back are both failures");
      assert.equal(summaryCount(lines, "confirmed"), 1);
      assert.equal(summaryCount(lines, "skipped"), 1);
      const perWave = lines.map((line) => /^[> ] (?:canary|wave \d+).* (\d+) failed/.exec(line)?.[1]).filter(Boolean);
      assert.equal(
        perWave.reduce((sum, n) => sum + Number(n), 0),
        summaryCount(lines, "failed"),
        "waves' failures add up to the summary's",
      );
    });
  }

  test("every host is counted exactly once, by one classification", () => {
    const counts = countHosts(MIXED.hosts);
    const sum = Object.values(counts.byCategory).reduce((a, b) => a + b, 0);
    assert.equal(sum, MIXED.hosts.length);
    assert.equal(categoryOf("reverting"), "reverting");
    assert.equal(categoryOf("rolled-back"), "failed");
  });

  test("a wave's done count never goes down: a confirmed host that is reverted stays done", () => {
    const steps = ["activating", "confirmed", "reverting", "reverted"].map((state) =>
      rollout({
        state: state === "activating" || state === "confirmed" ? "running" : "aborted",
        hosts: [host("web-1", 1, "confirmed"), host("web-2", 2, state)],
      }),
    );
    const wave2 = steps.map((r) => view(r, 60).find((line) => /^[> ] wave 2 /.test(line)) ?? "");
    assert.deepEqual(
      wave2.map((line) => /(\d+)\/1 done/.exec(line)?.[1]),
      ["0", "1", "1", "1"],
    );
    assert.match(wave2[1] as string, /\[#{10}\]/, "confirmed: a full bar of #");
    assert.match(wave2[2] as string, /\[~{10}\]/, "reverting: the bar stays full, drawn as ~");
  });

  test("no state the engine moves a host through takes it from done back to not done", () => {
    // Every transition the rollout engine makes (packages/controller/src/rollouts/engine.ts).
    const transitions: [string, string][] = [
      ["pending", "prefetching"],
      ["prefetching", "prefetched"],
      ["prefetching", "unfetchable"],
      ["unfetchable", "skipped"],
      ["prefetched", "waiting-window"],
      ["prefetched", "activating"],
      ["prefetched", "skipped"],
      ["waiting-window", "activating"],
      ["waiting-window", "skipped"],
      ["activating", "confirmed"],
      ["activating", "failed"],
      ["activating", "rolled-back"],
      ["confirmed", "reverting"],
      ["reverting", "reverted"],
      ["reverting", "failed"],
    ];
    for (const [from, to] of transitions) if (isDone(from)) assert.ok(isDone(to), `${from} → ${to}`);
  });

  test("the bar shows a single failure among many hosts", () => {
    const hosts = Array.from({ length: 100 }, (_, i) => host(`web-${i}`, 1, i === 0 ? "failed" : "confirmed"));
    assert.equal(bar(countHosts(hosts), 10), "[#########x]");
    assert.equal(bar(countHosts(hosts.map((h, i) => (i < 50 ? h : { ...h, state: "pending" }))), 10), "[####x.....]");
  });

  test("the pause between waves counts down, and the current wave shows its progress deadline", () => {
    assert.ok(view(PAUSING, 60).includes("pause between waves: wave 3 starts in 42s"));
    assert.ok(view(PAUSING, 60).some((line) => line.startsWith("> wave 3") && line.endsWith("starts in 42s")));
    assert.ok(view(RUNNING, 60).some((line) => line.startsWith("> wave 2") && line.endsWith("deadline in 4m10s")));
    const later = renderRollout(PAUSING, { width: 60, now: NOW + 30_000 });
    assert.ok(later.includes("pause between waves: wave 3 starts in 12s"), "the countdown follows the clock");
  });

  test("a gate says which command starts the next wave", () => {
    const text = view(GATED, 110).join("\n");
    assert.match(text, /gate: canary is done; start wave 2 with: ferry rollout promote r-mhz3k1c0-5f2a9e/);
    assert.match(text, /wave 2 .* waits for promote/);
  });

  test("a wave too large for its line names what fits and counts the rest as +N more", () => {
    const hosts = [
      host("canary-1", 1, "confirmed"),
      ...Array.from({ length: 40 }, (_, i) => host(`node-${String(i).padStart(2, "0")}`, 2, i < 3 ? "activating" : "prefetched")),
    ];
    const lines = view(rollout({ hosts }), 60);
    for (const line of lines) assert.ok(stringWidth(line) <= 60, line);
    const wave = lines.slice(lines.findIndex((line) => line.startsWith("> wave 2")) + 1).join(" ");
    const named = (wave.match(/node-\d\d/g) ?? []).length;
    const more = Number(/\+(\d+) more/.exec(wave)?.[1]);
    assert.equal(named + more, 40, wave);
    assert.match(wave, /^\s+activating node-00, node-01, node-02/, "hosts that are switching come first");
  });

  test("a rollout of many waves folds to the terminal's height and keeps the current wave", () => {
    const hosts = Array.from({ length: 40 }, (_, i) => host(`node-${i}`, Math.floor(i / 2) + 1, i < 20 ? "confirmed" : i < 22 ? "activating" : "prefetched"));
    const r = rollout({ currentWave: 11, hosts });
    const lines = view(r, 60, 12);
    assert.ok(lines.length <= 12, lines.join("\n"));
    assert.ok(
      lines.some((line) => line.startsWith("> wave 11")),
      lines.join("\n"),
    );
    assert.ok(
      lines.some((line) => /waves 1-9: 18\/18 done/.test(line)),
      lines.join("\n"),
    );
    const tiny = view(r, 60, 4);
    assert.equal(tiny.length, 4);
  });

  test("states this CLI does not know are shown by name and counted once", () => {
    const r = rollout({ state: "draining", reason: "new engine state", hosts: [host("web-1", 1, "quarantined"), host("web-2", 1, "confirmed")] });
    const text = view(r, 60).join("\n");
    assert.match(text, /1 quarantined/);
    assert.match(text, /quarantined web-1/);
    assert.match(text, /draining: new engine state/);
    assert.equal(isFinished(r), false);
  });

  test("a boot-mode host installed for the next boot is counted as waiting for reboot, and keeps the rollout unfinished", () => {
    const r = rollout({ state: "aborted", hosts: [host("web-1", 1, "boot-pending"), host("web-2", 1, "confirmed")] });
    const text = view(r, 60).join("\n");
    assert.match(text, /1 waiting for reboot/);
    assert.equal(isFinished(r), false);
  });

  test("text from the controller cannot move the cursor or break the layout", () => {
    const r = rollout({ state: "paused", reason: "bad\nmetrics \u001b[2J on canary", hosts: [host("web-1", 1, "confirmed")] });
    const text = view(r, 60).join("\n");
    assert.doesNotMatch(text, /\u001b/);
    assert.match(text, /paused: bad metrics \[2J on canary/);
  });

  test("a finished rollout is one whose hosts have stopped switching", () => {
    assert.equal(isFinished(MIXED), false, "aborted, but web-2 is reverting and web-3 activating");
    assert.equal(isFinished({ ...MIXED, hosts: MIXED.hosts.filter((h) => h.state !== "reverting" && h.state !== "activating") }), true);
  });

  test("a very narrow terminal still gets lines no wider than itself", () => {
    for (const width of [1, 10, 25]) for (const line of view(MIXED, width)) assert.ok(stringWidth(line) <= width, `${width}: ${line}`);
  });
});
