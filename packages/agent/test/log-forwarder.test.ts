import { test } from "node:test";
import assert from "node:assert/strict";
import type { LogLine } from "@ferry/protocol";
import { LogForwarder } from "../src/log-forwarder.js";

function collect(): { forwarder: LogForwarder; sent: LogLine[] } {
  const sent: LogLine[] = [];
  const forwarder = new LogForwarder();
  forwarder.attach((line) => {
    sent.push(line);
    return true;
  });
  return { forwarder, sent };
}

function write(forwarder: LogForwarder, text: string): Promise<void> {
  return new Promise((resolve, reject) => forwarder.write(text, (error) => (error ? reject(error) : resolve())));
}

test("only lines about a deployment (with a serial) are forwarded, with their level and rollout", async () => {
  const { forwarder, sent } = collect();
  await write(forwarder, `${JSON.stringify({ level: 30, time: "2026-01-01T00:00:00.000Z", msg: "agent started" })}\n`);
  await write(forwarder, `${JSON.stringify({ level: 50, time: "2026-01-01T00:00:01.000Z", msg: "fetch failed", serial: 7, rolloutId: "r-1" })}\n`);
  assert.deepEqual(sent, [
    { hostName: "", atMs: Date.parse("2026-01-01T00:00:01.000Z"), level: "error", message: "fetch failed", serial: 7, rolloutId: "r-1" },
  ]);
});

test("a line split across writes is forwarded once, whole", async () => {
  const { forwarder, sent } = collect();
  const line = JSON.stringify({ level: 40, time: "2026-01-01T00:00:02.000Z", msg: "retrying", serial: 3 });
  await write(forwarder, line.slice(0, 10));
  assert.equal(sent.length, 0);
  await write(forwarder, `${line.slice(10)}\n`);
  assert.equal(sent.length, 1);
  assert.equal(sent[0]?.level, "warn");
  assert.equal(sent[0]?.rolloutId, "");
});

test("garbage and unattached forwarders drop lines without failing", async () => {
  const lone = new LogForwarder();
  await write(lone, `${JSON.stringify({ level: 30, msg: "x", serial: 1 })}\nnot json\n`);
  const { forwarder, sent } = collect();
  await write(forwarder, "{not json}\n\n");
  assert.equal(sent.length, 0);
});
