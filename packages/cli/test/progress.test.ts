// The progress reporter with a fake clock and a fake stderr: a terminal of
// 40, 80 or 200 columns gets one line redrawn in place at most 10 times a
// second and never wider than the terminal; a log gets a plain line every
// 5 s; --json gets nothing; stdout never gets anything.
import { afterEach, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { stripVTControlCharacters as stripAnsi } from "node:util";
import { createProgress, etaSeconds, formatEta, plainLine, renderLine, type Snapshot } from "../src/progress.js";

const MIB = 1024 * 1024;

class FakeStream {
  chunks: string[] = [];
  constructor(
    readonly isTTY: boolean,
    public columns = 80,
  ) {}
  write(chunk: string): boolean {
    this.chunks.push(chunk);
    return true;
  }
  /** What the terminal shows on the bar's row: the text after the last erase. */
  get screen(): string {
    const text = this.chunks.join("");
    return stripAnsi(text.slice(text.lastIndexOf("\r") + 1));
  }
}

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000_000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

function snapshot(over: Partial<Snapshot> = {}): Snapshot {
  return {
    label: "uploading",
    bytes: 100 * MIB,
    items: 12,
    totalBytes: 400 * MIB,
    totalItems: 40,
    itemNoun: "paths",
    bytesPerSecond: 10 * MIB,
    itemsPerSecond: 1,
    ...over,
  };
}

let stdoutWrites = 0;
const realWrite = process.stdout.write.bind(process.stdout);
beforeEach(() => {
  stdoutWrites = 0;
  process.stdout.write = ((...args: Parameters<typeof realWrite>) => {
    stdoutWrites++;
    return realWrite(...args);
  }) as typeof process.stdout.write;
});
afterEach(() => {
  process.stdout.write = realWrite;
});

describe("progress on a terminal", () => {
  test("redraws at most every 100 ms, in place, and finishing clears the line", () => {
    const stream = new FakeStream(true, 80);
    const c = clock();
    const progress = createProgress({ label: "uploading", totalBytes: 100 * MIB, json: false, stream, now: c.now, every: () => () => {} });
    for (let i = 1; i <= 50; i++) {
      c.advance(10);
      progress.add(MIB);
    }
    // 500 ms of updates every 10 ms: a draw each 100 ms.
    assert.ok(stream.chunks.length >= 4 && stream.chunks.length <= 6, `drew ${stream.chunks.length} times`);
    assert.ok(stream.chunks.every((chunk) => chunk.startsWith("\r") && !chunk.includes("\n")));
    assert.match(stream.screen, /^uploading \[#+\.+\]\s+\d+% \d+\.\d\/100\.0 MiB/);
    progress.finish();
    assert.equal(stream.screen, "");
    assert.ok(stream.chunks.at(-1)?.includes("\x1b[2K"), "the last write erases the line");
    const writes = stream.chunks.length;
    progress.add(MIB);
    progress.finish();
    assert.equal(stream.chunks.length, writes, "nothing after finishing");
    assert.equal(stdoutWrites, 0);
  });

  test("the timer's tick redraws without news, so rate and ETA move on", () => {
    const stream = new FakeStream(true, 80);
    const c = clock();
    let tick = (): void => {};
    let stopped = false;
    const progress = createProgress({
      label: "uploading",
      totalBytes: 100 * MIB,
      json: false,
      stream,
      now: c.now,
      every: (_ms, fn) => {
        tick = fn;
        return () => (stopped = true);
      },
    });
    c.advance(1000);
    progress.add(10 * MIB);
    const before = stream.chunks.length;
    c.advance(20);
    tick();
    assert.equal(stream.chunks.length, before + 1);
    progress.finish();
    assert.ok(stopped);
  });

  test("no line before the first news; a total told late gives the bar its share", () => {
    const stream = new FakeStream(true, 80);
    const c = clock();
    let tick = (): void => {};
    const progress = createProgress({ label: "bundling", json: false, stream, now: c.now, every: (_ms, fn) => ((tick = fn), () => {}) });
    c.advance(1000);
    tick();
    assert.deepEqual(stream.chunks, []);
    progress.update({ bytes: 30 * MIB, totalBytes: 120 * MIB });
    assert.match(stream.screen, /^bundling \[#+\.+\] 25% 30\.0\/120\.0 MiB/);
    progress.finish();
    assert.equal(stream.screen, "");
  });

  for (const columns of [40, 80, 200]) {
    test(`fits ${columns} columns without wrapping`, () => {
      for (const over of [{}, { label: "uploading the closure of many hosts" }, { totalBytes: undefined }, { totalItems: undefined, items: 0 }]) {
        const line = renderLine(snapshot(over), columns - 1);
        assert.ok(line.length <= columns - 1, `${line.length} > ${columns - 1}: ${line}`);
        assert.ok(!line.includes("\n"));
      }
      const stream = new FakeStream(true, columns);
      const c = clock();
      const progress = createProgress({
        label: "uploading",
        totalBytes: 4000 * MIB,
        totalItems: 1234,
        itemNoun: "paths",
        json: false,
        stream,
        now: c.now,
        every: () => () => {},
      });
      c.advance(2000);
      progress.update({ bytes: 1500 * MIB, items: 321 });
      assert.ok(stream.screen.length < columns, `${stream.screen.length}: ${stream.screen}`);
      assert.match(stream.screen, /1500\.0\/4000\.0 MiB/);
    });
  }

  test("a wide terminal shows everything; a narrow one drops rate, items and label first", () => {
    const wide = renderLine(snapshot(), 199);
    assert.match(wide, /^uploading \[#{9}\.{29}\] 25% 100\.0\/400\.0 MiB 12\/40 paths 10\.0 MiB\/s ETA 0:30$/);
    const narrow = renderLine(snapshot(), 39);
    assert.doesNotMatch(narrow, /MiB\/s|paths|uploading/);
    assert.match(narrow, /\[#*\.*\]\s+25% 100\.0\/400\.0 MiB ETA 0:30/);
    const tiny = renderLine(snapshot(), 12);
    assert.ok(tiny.length <= 12);
  });

  test("the bar follows the terminal's width at each draw and erases the rows a narrowing wrapped", () => {
    const stream = new FakeStream(true, 200);
    const c = clock();
    const progress = createProgress({ label: "uploading", totalBytes: 100 * MIB, totalItems: 10, json: false, stream, now: c.now, every: () => () => {} });
    c.advance(500);
    progress.update({ bytes: 50 * MIB, items: 5 });
    const drawn = stream.screen.length;
    assert.ok(drawn > 40);
    stream.columns = 40;
    c.advance(500);
    progress.update({ bytes: 60 * MIB, items: 6 });
    assert.ok(stream.screen.length < 40);
    const erase = stream.chunks.at(-1) ?? "";
    assert.equal(erase.split("\x1b[2K").length - 1, Math.ceil(drawn / 40));
  });
});

describe("progress in a log and with --json", () => {
  test("a plain line every 5 s at most, whole lines, no escapes", () => {
    const stream = new FakeStream(false);
    const c = clock();
    const progress = createProgress({ label: "uploading", totalBytes: 100 * MIB, totalItems: 10, itemNoun: "paths", json: false, stream, now: c.now });
    for (let second = 1; second <= 12; second++) {
      c.advance(1000);
      progress.update({ bytes: second * 5 * MIB, items: second });
    }
    progress.finish();
    assert.deepEqual(stream.chunks, [
      "uploading: 5/10 paths, 25.0/100.0 MiB (25%), 5.0 MiB/s, ETA 0:15\n",
      "uploading: 10/10 paths, 50.0/100.0 MiB (50%), 5.0 MiB/s, ETA 0:10\n",
    ]);
    assert.equal(stdoutWrites, 0);
  });

  test("a job shorter than 5 s prints nothing", () => {
    const stream = new FakeStream(false);
    const c = clock();
    const progress = createProgress({ label: "uploading", totalBytes: 10, json: false, stream, now: c.now });
    c.advance(4000);
    progress.update({ bytes: 10 });
    progress.finish();
    assert.deepEqual(stream.chunks, []);
  });

  test("--json: nothing on stderr, nothing on stdout, even on a terminal", () => {
    for (const isTTY of [true, false]) {
      const stream = new FakeStream(isTTY);
      const c = clock();
      const progress = createProgress({ label: "uploading", totalBytes: 10 * MIB, json: true, stream, now: c.now });
      for (let i = 0; i < 20; i++) {
        c.advance(1000);
        progress.add(MIB);
      }
      progress.finish();
      assert.deepEqual(stream.chunks, []);
    }
    assert.equal(stdoutWrites, 0);
  });
});

describe("rate and ETA", () => {
  test("ETA is what is left over the rate, by bytes when their total is known", () => {
    assert.equal(etaSeconds(snapshot()), 30);
    assert.equal(etaSeconds(snapshot({ totalBytes: undefined })), 28);
    assert.equal(etaSeconds(snapshot({ bytesPerSecond: 0 })), undefined);
    assert.equal(etaSeconds(snapshot({ totalBytes: undefined, totalItems: undefined })), undefined);
    assert.equal(etaSeconds(snapshot({ bytes: 500 * MIB })), 0);
  });

  test("formatEta", () => {
    assert.equal(formatEta(0), "0:00");
    assert.equal(formatEta(59.2), "1:00");
    assert.equal(formatEta(65), "1:05");
    assert.equal(formatEta(3723), "1:02:03");
  });

  test("the rate covers the last 10 s, so a stall shows", () => {
    const stream = new FakeStream(false);
    const c = clock();
    const progress = createProgress({ label: "sending", totalBytes: 1000 * MIB, json: false, stream, now: c.now });
    // 20 s at 10 MiB/s, then 10 s at 1 MiB/s: the rate is the last 10 s alone.
    for (let second = 1; second <= 20; second++) {
      c.advance(1000);
      progress.add(10 * MIB);
    }
    for (let second = 1; second <= 10; second++) {
      c.advance(1000);
      progress.add(MIB);
    }
    const last = stream.chunks.at(-1) ?? "";
    assert.match(last, /210\.0\/1000\.0 MiB \(21%\), 1\.0 MiB\/s/);
  });

  test("without totals: counts and rate, no share, no ETA", () => {
    const line = plainLine(snapshot({ totalBytes: undefined, totalItems: undefined }));
    assert.equal(line, "uploading: 12 paths, 100.0 MiB, 10.0 MiB/s");
  });
});
