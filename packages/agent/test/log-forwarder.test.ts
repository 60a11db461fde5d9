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
    { hostName: "", atMs: Date.parse("2026-01-01T00:00:01.000Z"), level: "error", message: "fetch failed", serial: 7, rolloutId: "r-1", fieldsJson: "" },
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

test("the event's own fields travel with it: failingBefore and the checks' report are not dropped", async () => {
  const { forwarder, sent } = collect();
  const event = {
    level: 40,
    time: "2026-01-01T00:00:03.000Z",
    pid: 12,
    hostname: "web1",
    component: "agent",
    host: "web1",
    serial: 9,
    deploymentId: "d-9",
    failingBefore: ["systemd:nginx.service"],
    msg: "checks already failing before the switch; they count only if strict",
  };
  await write(forwarder, `${JSON.stringify(event)}\n`);
  await write(
    forwarder,
    `${JSON.stringify({ level: 30, time: event.time, serial: 9, checks: "FAIL systemd:nginx.service\n     inactive", msg: "new system confirmed" })}\n`,
  );
  assert.equal(sent.length, 2);
  assert.deepEqual(JSON.parse(sent[0]?.fieldsJson ?? ""), { deploymentId: "d-9", failingBefore: ["systemd:nginx.service"] });
  assert.deepEqual(JSON.parse(sent[1]?.fieldsJson ?? ""), { checks: "FAIL systemd:nginx.service\n     inactive" });
});

test("fields are bounded: long texts keep their tail, and an oversized event keeps only its field names", async () => {
  const { forwarder, sent } = collect();
  await write(forwarder, `${JSON.stringify({ level: 30, serial: 1, msg: "x", checks: `${"a".repeat(10_000)}END` })}\n`);
  const checks = (JSON.parse(sent[0]?.fieldsJson ?? "") as { checks: string }).checks;
  assert.ok(checks.length <= 4096 + 3 && checks.endsWith("END"), `${checks.length} chars`);
  const many = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`f${i}`, "b".repeat(4000)]));
  await write(forwarder, `${JSON.stringify({ level: 30, serial: 1, msg: "y", ...many })}\n`);
  assert.deepEqual(JSON.parse(sent[1]?.fieldsJson ?? ""), { fieldsDropped: Object.keys(many) });
});
