// A compromised host floods its own agent channel: frames are rate-limited per
// connection, every string it supplies is capped before it is stored or
// logged, and its history cannot grow past the per-host event cap.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { statSync } from "node:fs";
import { join } from "node:path";
import WebSocket from "ws";
import { hashToken } from "@ferry/core";
import { HostPhase, decodeControllerFrame, encodeAgentFrame, type AgentBody, type ControllerBody } from "@ferry/protocol";
import { startTestController, type TestController } from "./controller-fixture.js";

const TOKEN = "flood-token-0123456789abcdef0123456789abcdef";
const SYSTEM = "/nix/store/pz5wv3mkbf4bwihvsz8yqydfwb9bfhy5-nixos-system-flood";
const EVENTS_PER_HOST = 50;

let t: TestController;

before(async () => {
  t = await startTestController({ agentFrameRate: { burst: 100, perSecond: 50 }, history: { eventsPerHost: EVENTS_PER_HOST } });
  await t.controller.store.addHost("flood-1", hashToken(TOKEN), [], Date.now());
});
after(() => t.stop());

interface Link {
  ws: WebSocket;
  frames: ControllerBody[];
  closed: Promise<number>;
  send(body: AgentBody): void;
}

async function authenticated(): Promise<Link> {
  const ws = new WebSocket(`ws://127.0.0.1:${t.controller.httpPort}/agent`, { perMessageDeflate: false });
  const frames: ControllerBody[] = [];
  ws.on("message", (data) => frames.push(decodeControllerFrame(Buffer.from(data as Buffer)).body));
  ws.on("error", () => undefined);
  const closed = new Promise<number>((resolve) => ws.on("close", (code) => resolve(code)));
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  const send = (body: AgentBody): void => ws.send(encodeAgentFrame(body), { binary: true });
  send({
    $case: "hello",
    value: { hostName: "flood-1", token: TOKEN, currentSystem: "", appliedSerial: 0, phase: HostPhase.HOST_PHASE_UNSPECIFIED, agentVersion: "x".repeat(5000) },
  } satisfies AgentBody);
  for (let i = 0; i < 100 && !frames.some((frame) => frame.$case === "welcome"); i++) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok(
    frames.some((frame) => frame.$case === "welcome"),
    "the agent must be welcomed first",
  );
  return { ws, frames, closed, send };
}

const maximalResult = (serial: number): AgentBody =>
  ({
    $case: "result",
    value: {
      hostName: "flood-1",
      serial,
      storePath: SYSTEM,
      success: false,
      phase: HostPhase.HOST_PHASE_FAILED,
      errorCode: "E_".padEnd(250_000, "X"),
      errorMessage: "m".repeat(250_000),
      output: "o".repeat(250_000),
      currentSystem: SYSTEM,
      finishedAtMs: Date.now(),
      checksFailingBeforeAndAfter: Array.from({ length: 200 }, (_, i) => `command:${i}`.padEnd(300, "c")),
      checksRun: 200,
    },
  }) satisfies AgentBody;

test("a connection over its frame rate is cut with E_RATE_LIMITED (not fatal: a real agent reconnects)", async () => {
  const link = await authenticated();
  for (let i = 0; i < 400 && link.ws.readyState === WebSocket.OPEN; i++) {
    link.send({ $case: "heartbeat", value: { sequence: i, sentAtMs: Date.now(), currentSystem: "", phase: HostPhase.HOST_PHASE_ACTIVE } } satisfies AgentBody);
  }
  const code = await Promise.race([link.closed, new Promise<number>((resolve) => setTimeout(() => resolve(-1), 5000))]);
  assert.equal(code, 4007);
  const refusal = link.frames.find((frame) => frame.$case === "refusal");
  assert.equal(refusal?.$case === "refusal" && refusal.value.code, "E_RATE_LIMITED");
  assert.equal(refusal?.$case === "refusal" && refusal.value.fatal, false);
});

test("maximal result frames in a loop cannot grow the database past the per-host cap", async () => {
  const deadline = Date.now() + 6000;
  let sent = 0;
  while (Date.now() < deadline) {
    const link = await authenticated();
    while (link.ws.readyState === WebSocket.OPEN && Date.now() < deadline) {
      link.send(maximalResult(sent++));
      if (link.ws.bufferedAmount > 8 * 1024 * 1024) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    link.ws.terminate();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.ok(sent > EVENTS_PER_HOST * 2, `only ${sent} frames were sent`);
  const events = await t.controller.store.listEvents("flood-1", 10_000);
  assert.ok(events.length <= EVENTS_PER_HOST, `${events.length} events kept`);
  for (const event of events) {
    assert.ok(String(event.data["errorMessage"]).length < 4200 && String(event.data["errorCode"]).length < 200);
    assert.ok(JSON.stringify(event.data["checksFailingBeforeAndAfter"] ?? []).length < 64 * 600);
  }
  const host = await t.controller.store.getHost("flood-1");
  assert.ok((host?.lastErrorOutput.length ?? 0) < 17_000 && (host?.agentVersion.length ?? 0) <= 64);
  const bytes = ["state.sqlite", "state.sqlite-wal"].reduce((sum, name) => sum + (statSync(join(t.dataDir, name), { throwIfNoEntry: false })?.size ?? 0), 0);
  assert.ok(bytes < 48 * 1024 * 1024, `the database grew to ${bytes} bytes after ${sent} frames of ~900 KB`);
});

test("history older than the retention is pruned", async () => {
  const store = t.controller.store;
  await store.recordReports([
    { name: "flood-1", report: {}, event: { atMs: Date.now() - 40 * 86_400_000, kind: "old", data: {} } },
    { name: "flood-1", report: {}, event: { atMs: Date.now(), kind: "new", data: {} } },
  ]);
  const deleted = await store.pruneEvents(Date.now() - 30 * 86_400_000);
  assert.equal(deleted, 1);
  const kinds = (await store.listEvents("flood-1", 10_000)).map((event) => event.kind);
  assert.ok(kinds.includes("new") && !kinds.includes("old"));
});
