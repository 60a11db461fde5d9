// The watch driver with a fake terminal, a fake clock and a scripted
// sequence of controller answers: plain lines for logs, in-place redraws for
// a terminal (also across a resize), and Ctrl-C.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { stripVTControlCharacters as stripAnsi } from "node:util";
import stringWidth from "string-width";
import { FerryError } from "@ferry/core";
import type { Rollout } from "@ferry/protocol";
import { changeLines } from "../src/rollout-log.js";
import { watchRollout } from "../src/rollout-watch.js";
import { NOW, T0, host, rollout } from "./rollout-fixtures.js";

/** A terminal (or a pipe, with isTTY false) that records what is written. */
class FakeStream extends EventEmitter {
  chunks: string[] = [];
  constructor(
    readonly isTTY: boolean,
    public columns = 110,
    public rows = 30,
  ) {
    super();
  }
  write(chunk: string): boolean {
    this.chunks.push(String(chunk));
    return true;
  }
  get text(): string {
    return this.chunks.join("");
  }
  asStream(): NodeJS.WriteStream {
    return this as unknown as NodeJS.WriteStream;
  }
}

/** A rollout going from prefetch to completion: canary, then a wave where one host fails. */
function story(): Rollout[] {
  const base = { policy: { ...rollout({ hosts: [host("x", 1, "pending")] }).policy!, pauseMs: 0, rollbackOnAbort: false } };
  return [
    rollout({
      ...base,
      state: "prefetching",
      currentWave: 0,
      phaseDeadlineAtMs: NOW + 60_000,
      hosts: [host("web-1", 1, "prefetching"), host("web-2", 2, "prefetching"), host("web-3", 2, "pending")],
    }),
    rollout({ ...base, currentWave: 1, hosts: [host("web-1", 1, "activating"), host("web-2", 2, "prefetched"), host("web-3", 2, "prefetched")] }),
    rollout({ ...base, currentWave: 2, hosts: [host("web-1", 1, "confirmed"), host("web-2", 2, "activating"), host("web-3", 2, "activating")] }),
    rollout({
      ...base,
      state: "completed",
      reason: "2 confirmed, 1 failed, 0 skipped",
      hosts: [
        host("web-1", 1, "confirmed"),
        host("web-2", 2, "confirmed"),
        host("web-3", 2, "rolled-back", "E_HEALTH_CHECK_FAILED", "unit web.service failed"),
      ],
    }),
  ];
}

function scripted(answers: (Rollout | Error)[]): () => Promise<Rollout> {
  let call = 0;
  return async () => {
    const answer = answers[Math.min(call++, answers.length - 1)] as Rollout | Error;
    if (answer instanceof Error) throw answer;
    return answer;
  };
}

const WATCH = "ferry rollout status r-mhz3k1c0-5f2a9e --wait";

describe("rollout watch", () => {
  test("without a terminal: plain lines, one per change in the order things happen, no escape codes, a closing summary", async () => {
    const stream = new FakeStream(false);
    const result = await watchRollout({
      id: "r-mhz3k1c0-5f2a9e",
      fetch: scripted([...story().slice(0, 2), story()[1] as Rollout, ...story().slice(2)]),
      stream: stream.asStream(),
      live: false,
      timeoutMs: 60_000,
      watchCommand: WATCH,
      pollMs: 1,
      now: () => NOW,
      signals: new EventEmitter(),
    });
    assert.equal(result.outcome, "finished");
    assert.doesNotMatch(stream.text, /\u001b/);
    const lines = stream.text.trimEnd().split("\n");
    assert.deepEqual(lines, [
      "[+3m12s] rollout r-mhz3k1c0-5f2a9e: 3 host(s) in 2 wave(s)",
      "[+3m12s]   canary: web-1",
      "[+3m12s]   wave 2: web-2, web-3",
      "[+3m12s] prefetching closures on 3 host(s)",
      "[+3m12s] web-1 prefetching (canary)",
      "[+3m12s] web-2 prefetching (wave 2)",
      "[+3m12s] canary (1/2): web-1 started",
      "[+3m12s] web-1 activating (canary)",
      "[+3m12s] web-2 prefetched (wave 2)",
      "[+3m12s] web-3 prefetched (wave 2)",
      "[+3m12s] web-1 confirmed (canary)",
      "[+3m12s] wave 2 (2/2): web-2, web-3 started",
      "[+3m12s] web-2 activating (wave 2)",
      "[+3m12s] web-3 activating (wave 2)",
      "[+3m12s] web-2 confirmed (wave 2)",
      "[+3m12s] web-3 rolled-back E_HEALTH_CHECK_FAILED: unit web.service failed (wave 2)",
      "[+3m12s] completed: 2 confirmed, 1 failed, 0 skipped",
      "rollout r-mhz3k1c0-5f2a9e completed: 3 hosts: 2 confirmed · 1 failed",
    ]);
  });

  test("the first look at a rollout already under way tells what has happened so far", () => {
    const lines = changeLines(undefined, rollout({ resumeAtMs: NOW + 42_000, hosts: [host("web-1", 1, "confirmed"), host("web-2", 2, "prefetched")] }), NOW);
    assert.ok(lines.includes("[+3m12s] wave 2 (2/2): web-2 starts in 42s (pause between waves)"), lines.join("\n"));
    assert.ok(lines.includes("[+3m12s] web-1 confirmed (canary)"), lines.join("\n"));
  });

  test("in a terminal: redraws in place, every line within the width, and re-fits after a resize to 60 columns", async () => {
    const stream = new FakeStream(true, 110, 30);
    const answers = story();
    let call = 0;
    let resizedAt = -1;
    const result = await watchRollout({
      id: "r-mhz3k1c0-5f2a9e",
      fetch: async () => {
        call += 1;
        if (call === 3) {
          // The person narrows the terminal between two looks.
          stream.columns = 60;
          resizedAt = stream.chunks.length;
          stream.emit("resize");
        }
        return answers[Math.min(call - 1, answers.length - 1)] as Rollout;
      },
      stream: stream.asStream(),
      live: true,
      timeoutMs: 60_000,
      watchCommand: WATCH,
      pollMs: 1,
      now: () => NOW,
      signals: new EventEmitter(),
    });
    assert.equal(result.outcome, "finished");
    assert.ok(resizedAt > 0);
    const frames = stream.chunks.map((chunk) => stripAnsi(chunk));
    for (const frame of frames.slice(0, resizedAt)) for (const line of frame.split("\n")) assert.ok(stringWidth(line) <= 110, JSON.stringify(line));
    const after = frames.slice(resizedAt);
    assert.ok(after.length >= 2, "the resize redrew, and later looks drew again");
    // After the resize every frame is laid out for 60 columns.
    for (const frame of after) for (const line of frame.split("\n")) assert.ok(stringWidth(line) <= 60, JSON.stringify(line));
    assert.match(after.join(""), /rolled-back web-3 \(E_HEALTH_CHECK_FAILED\)/, "the last frame shows how it ended");
  });

  test("in a short terminal the frames fold to its height, and the last frame is written whole for the scrollback", async () => {
    const stream = new FakeStream(true, 60, 8);
    const hosts = Array.from({ length: 8 }, (_, i) => host(`node-${i + 1}`, i + 1, "confirmed"));
    const running = rollout({ currentWave: 8, hosts: hosts.map((h, i) => (i === 7 ? { ...h, state: "activating" } : h)) });
    const done = rollout({ state: "completed", currentWave: 8, hosts });
    const result = await watchRollout({
      id: "r-mhz3k1c0-5f2a9e",
      fetch: scripted([running, done]),
      stream: stream.asStream(),
      live: true,
      timeoutMs: 60_000,
      watchCommand: WATCH,
      pollMs: 1,
      now: () => NOW,
      signals: new EventEmitter(),
    });
    assert.equal(result.outcome, "finished");
    const first = stripAnsi(stream.chunks[0] as string)
      .trimEnd()
      .split("\n");
    assert.ok(first.length <= 7, `the live frame fits 8 rows:\n${first.join("\n")}`);
    const last = stripAnsi(stream.chunks[stream.chunks.length - 1] as string);
    for (const h of hosts) assert.match(last, new RegExp(`confirmed ${h.name}\\b`), "every host in the record");
    assert.doesNotMatch(last, /Ctrl-C/);
  });

  test("a resize erases the old frame by the rows it takes once the terminal has re-wrapped it", async () => {
    const stream = new FakeStream(true, 110, 30);
    const only = rollout({ hosts: [host("web-1", 1, "confirmed"), host("web-2", 2, "activating")] });
    const signals = new EventEmitter();
    let looks = 0;
    const watching = watchRollout({
      id: "r-mhz3k1c0-5f2a9e",
      fetch: async () => {
        looks += 1;
        return only;
      },
      stream: stream.asStream(),
      live: true,
      timeoutMs: 60_000,
      watchCommand: WATCH,
      pollMs: 5,
      now: () => NOW,
      signals,
    });
    try {
      await resizeChecks();
    } finally {
      signals.emit("SIGINT");
    }
    assert.equal((await watching).outcome, "interrupted");

    async function resizeChecks(): Promise<void> {
      while (stream.chunks.length === 0 || looks < 1) await new Promise((resolve) => setTimeout(resolve, 1));
      const frame = stripAnsi(stream.chunks.join("")).trimEnd().split("\n");
      const widest = Math.max(...frame.map((line) => stringWidth(line)));
      assert.ok(widest > 40, "some line of the 110-column frame is wider than the new width");
      const rowsAt40 = frame.reduce((sum, line) => sum + Math.max(1, Math.ceil(stringWidth(line) / 40)), 0);
      assert.ok(rowsAt40 > frame.length);
      const before = stream.chunks.length;
      stream.columns = 40;
      stream.emit("resize");
      const erase = stream.chunks[before] as string;
      assert.equal((erase.match(/\u001b\[2K/g) ?? []).length, rowsAt40 + 1, "erases the re-wrapped frame and the cursor's line");
    }
  });

  test("Ctrl-C stops the watch, leaves the last frame, and says the rollout goes on and how to watch it again", async () => {
    for (const live of [true, false]) {
      const stream = new FakeStream(live);
      const signals = new EventEmitter();
      const running = rollout({ hosts: [host("web-1", 1, "activating")] });
      let looks = 0;
      const watching = watchRollout({
        id: "r-mhz3k1c0-5f2a9e",
        fetch: async () => {
          looks += 1;
          return running;
        },
        stream: stream.asStream(),
        live,
        timeoutMs: 60_000,
        watchCommand: WATCH,
        pollMs: 60_000,
        now: () => NOW,
        signals,
      });
      while (stream.chunks.length === 0 || looks < 1) await new Promise((resolve) => setTimeout(resolve, 1));
      assert.equal(signals.listenerCount("SIGINT"), 1);
      signals.emit("SIGINT");
      const result = await watching;
      assert.equal(result.outcome, "interrupted");
      assert.equal(result.rollout, running);
      assert.match(stream.text, /Stopped watching\. Rollout r-mhz3k1c0-5f2a9e goes on on the controller\./);
      assert.ok(stream.text.includes(`watch it again:  ${WATCH}`));
      assert.equal(signals.listenerCount("SIGINT"), 0, "Ctrl-C is the shell's again once the watch is over");
    }
  });

  test("a controller that goes away is waited for, and said so; other errors end the watch", async () => {
    const stream = new FakeStream(false);
    const [first, , , last] = story() as [Rollout, Rollout, Rollout, Rollout];
    const away = new FerryError("E_CONTROLLER_UNREACHABLE", "connection refused");
    const result = await watchRollout({
      id: "r-mhz3k1c0-5f2a9e",
      fetch: scripted([first, away, away, last]),
      stream: stream.asStream(),
      live: false,
      timeoutMs: 60_000,
      watchCommand: WATCH,
      pollMs: 1,
      now: () => NOW,
      signals: new EventEmitter(),
    });
    assert.equal(result.outcome, "finished");
    assert.equal(stream.text.match(/controller unreachable; still trying/g)?.length, 1);
    assert.match(stream.text, /controller reachable again/);
    await assert.rejects(
      watchRollout({
        id: "r-x",
        fetch: scripted([new FerryError("E_UNKNOWN_ROLLOUT", "no rollout r-x")]),
        stream: new FakeStream(false).asStream(),
        live: false,
        timeoutMs: 60_000,
        watchCommand: WATCH,
        signals: new EventEmitter(),
      }),
      /no rollout r-x/,
    );
  });

  test("the timeout names the command that watches again", async () => {
    let clock = T0;
    await assert.rejects(
      watchRollout({
        id: "r-mhz3k1c0-5f2a9e",
        fetch: async () => rollout({ hosts: [host("web-1", 1, "activating")] }),
        stream: new FakeStream(false).asStream(),
        live: false,
        timeoutMs: 10_000,
        watchCommand: WATCH,
        pollMs: 1,
        now: () => (clock += 6_000),
        signals: new EventEmitter(),
      }),
      (error: unknown) => error instanceof FerryError && error.code === "E_DEPLOY_TIMEOUT" && error.message.includes(WATCH),
    );
  });
});
