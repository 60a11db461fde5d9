import { test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type { WebSocket } from "ws";
import { hashToken } from "@ferry/core";
import { ActivationMode, HostPhase, decodeControllerFrame, encodeAgentFrame, type AgentBody, type ControllerBody } from "@ferry/protocol";
import { pino } from "pino";
import { AgentSession } from "../src/hub/agent-session.js";
import { LinkLog } from "../src/hub/link-log.js";
import { ReportWriter } from "../src/hub/report-writer.js";
import type { HostRecord, HostReportEntry } from "../src/store/state-store.js";

const TOKEN = "t".repeat(64);
const SYSTEM = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-nixos-system-web-1";

const host: HostRecord = {
  name: "web-1",
  tokenHash: hashToken(TOKEN),
  tags: [],
  createdAtMs: 0,
  desiredSystem: SYSTEM,
  desiredSerial: 3,
  deploymentId: "d-3",
  activationMode: ActivationMode.ACTIVATION_MODE_SWITCH,
  currentSystem: "",
  previousSystem: "",
  phase: HostPhase.HOST_PHASE_UNSPECIFIED,
  appliedSerial: 0,
  lastSeenMs: 0,
  lastErrorCode: "",
  lastErrorMessage: "",
  lastErrorOutput: "",
  agentVersion: "test",
  desiredActivate: true,
  rolloutId: "",
  heldForWindow: false,
  checksFailingBeforeAndAfter: [],
  checksRun: 0,
  desiredIntent: undefined,
};

/** The socket side the session uses, recording what it sends. */
class FakeSocket extends EventEmitter {
  readonly sent: ControllerBody[] = [];
  closedWith: number | undefined;
  send(data: Uint8Array): void {
    this.sent.push(decodeControllerFrame(data).body);
  }
  close(code: number): void {
    this.closedWith = code;
  }
  terminate(): void {
    this.closedWith = -1;
  }
  frame(body: AgentBody): void {
    this.emit("message", Buffer.from(encodeAgentFrame(body)), true);
  }
}

/** A store whose report writes can be held, as a slow disk under a rollout wave holds them. */
function heldStore() {
  const written: HostReportEntry[][] = [];
  const held: (() => void)[] = [];
  let holding = false;
  return {
    written,
    hold: () => (holding = true),
    release: () => {
      holding = false;
      for (const resume of held.splice(0)) resume();
    },
    recordReports: (entries: HostReportEntry[]): Promise<void> => {
      written.push(entries);
      return holding ? new Promise((resolve) => held.push(resolve)) : Promise.resolve();
    },
  };
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function welcomedSession() {
  const store = heldStore();
  const log = pino({ level: "silent" });
  const socket = new FakeSocket();
  const reports = new ReportWriter(store);
  const session = new AgentSession(socket as unknown as WebSocket, "127.0.0.1", {
    store: { getHost: (name) => Promise.resolve(name === host.name ? host : undefined), raiseSerialFloor: () => Promise.resolve(host) },
    reports,
    links: new LinkLog(log, () => 1),
    log,
    heartbeatIntervalMs: 60_000,
    now: Date.now,
    onAuthenticated: () => undefined,
    onClosed: () => undefined,
    onHostChanged: () => undefined,
    onDryActivateOutcome: () => undefined,
    frameRate: { burst: 100, perSecond: 100 },
  });
  socket.frame({ $case: "hello", value: { hostName: host.name, token: TOKEN, currentSystem: "", agentVersion: "test", appliedSerial: 0, phase: 0 } });
  await until(() => socket.sent.some((body) => body.$case === "desired"), "welcome and desired");
  return { store, socket, session };
}

function heartbeat(sequence: number, currentSystem = ""): AgentBody {
  return { $case: "heartbeat", value: { sequence, sentAtMs: Date.now(), currentSystem, phase: 0 } };
}

function progress(phase: HostPhase): AgentBody {
  return { $case: "progress", value: { hostName: host.name, serial: 3, phase, message: "", bytesDone: 0, bytesTotal: 0 } };
}

test("a heartbeat sent behind progress reports is answered while their durable write is still pending", async () => {
  const { store, socket } = await welcomedSession();
  store.hold();
  const writesBefore = store.written.length;
  socket.frame(progress(HostPhase.HOST_PHASE_ACTIVATING));
  socket.frame(progress(HostPhase.HOST_PHASE_CONFIRMING));
  socket.frame(heartbeat(9));
  await until(() => store.written.length > writesBefore, "the first progress write");
  const ack = socket.sent.find((body) => body.$case === "heartbeatAck");
  assert.ok(ack?.$case === "heartbeatAck" && ack.value.sequence === 9, `sent: ${socket.sent.map((body) => body.$case).join(", ")}`);
  // The reports themselves still go in order, one after the other.
  assert.deepEqual(
    store.written
      .slice(writesBefore)
      .flat()
      .map((entry) => entry.report.phase),
    [HostPhase.HOST_PHASE_ACTIVATING],
  );
  store.release();
  await until(() => store.written.slice(writesBefore).flat().length === 2, "the second progress write");
  store.release();
  assert.deepEqual(
    store.written
      .slice(writesBefore)
      .flat()
      .map((entry) => entry.report.phase),
    [HostPhase.HOST_PHASE_ACTIVATING, HostPhase.HOST_PHASE_CONFIRMING],
  );
  assert.equal(socket.sent.filter((body) => body.$case === "heartbeatAck").length, 1, "answered once, not again by the queue");
  socket.emit("close");
});

test("a heartbeat naming a bad store path is not answered early; the queue refuses it after the frames before it", async () => {
  const { store, socket } = await welcomedSession();
  store.hold();
  const writesBefore = store.written.length;
  socket.frame(progress(HostPhase.HOST_PHASE_ACTIVATING));
  socket.frame(heartbeat(10, "/nix/store/not-a-store-path"));
  await until(() => store.written.length > writesBefore, "the progress write");
  assert.equal(socket.sent.filter((body) => body.$case === "heartbeatAck").length, 0);
  assert.equal(socket.closedWith, undefined, "nothing refused before the progress report is written");
  store.release();
  await until(() => socket.closedWith !== undefined, "the refusal");
  const refusal = socket.sent.find((body) => body.$case === "refusal");
  assert.ok(refusal?.$case === "refusal" && refusal.value.code === "E_BAD_STORE_PATH");
  socket.emit("close");
});

test("a desired system older than the one already sent (an earlier assignment's late slice) is not sent", async () => {
  const { socket, session } = await welcomedSession();
  const sentBefore = socket.sent.length;
  session.sendDesired({ ...host, desiredSerial: 2, deploymentId: "d-2" });
  assert.equal(socket.sent.length, sentBefore);
  assert.equal(session.desiredSerial, 3);
  session.sendDesired({ ...host, desiredSerial: 4, deploymentId: "d-4" });
  const last = socket.sent.at(-1);
  assert.ok(last?.$case === "desired" && last.value.serial === 4);
  socket.emit("close");
});
