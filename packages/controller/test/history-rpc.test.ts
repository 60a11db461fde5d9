import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { Metadata, credentials, type ServiceError } from "@grpc/grpc-js";
import { hashToken } from "@ferry/core";
import {
  ActivationMode,
  HostPhase,
  OperatorServiceClient,
  encodeAgentFrame,
  type HistoryEntry,
  type HostLogLine,
  type RollbackResponse,
  type StreamLogsRequest,
} from "@ferry/protocol";
import { HostLogs } from "../src/hub/host-logs.js";
import { callMethod } from "./operator-calls.js";
import { recordDeployment } from "./record-deployment.js";
import { startTestController, type TestController } from "./controller-fixture.js";

const SYS_A = "/nix/store/pz5wv3mkbf4bwihvsz8yqydfwb9bfhy5-nixos-system-a";
const SYS_B = "/nix/store/1zy01hjzwvvia6h9dq5xar88v77fgh9x-nixos-system-b";
const SYS_C = "/nix/store/2zy01hjzwvvia6h9dq5xar88v77fgh9x-nixos-system-c";
const TOKEN = "web1-token-0123456789abcdef0123456789abcdef";

let t: TestController;
let address: string;

before(async () => {
  t = await startTestController({ heartbeatIntervalMs: 1000 });
  address = `127.0.0.1:${t.controller.grpcPort}`;
  const { store } = t.controller;
  await store.addHost("web1", hashToken(TOKEN), [], Date.now());
  await store.addHost("fresh1", hashToken("fresh1-token-0123456789abcdef0123456789"), [], Date.now());
  // web1 ran A before Ferry, then confirmed B, then C.
  await store.recordReport("web1", { currentSystem: SYS_A });
  for (const [serial, path] of [
    [1, SYS_B],
    [2, SYS_C],
  ] as const) {
    await recordDeployment(store, `d-${serial}`, [{ hostName: "web1", storePath: path }], ActivationMode.ACTIVATION_MODE_UNSPECIFIED, Date.now(), "ci");
    await store.recordReports([
      {
        name: "web1",
        report: { currentSystem: path, appliedSerial: serial, phase: HostPhase.HOST_PHASE_ACTIVE },
        event: { atMs: Date.now(), kind: "activation-succeeded", data: { serial, storePath: path, phase: "active", errorCode: "", errorMessage: "" } },
      },
    ]);
  }
});
after(async () => {
  await t.stop();
});

describe("ferry history and rollback over gRPC", () => {
  test("history lists each deployment with its outcome, newest first, for one host or the fleet", async () => {
    const one = await callMethod(address, "ListHistory", { hostName: "web1" }, t.adminToken);
    assert.equal(one.code, "ok", one.message);
    const entries = (one.response as { entries: HistoryEntry[] }).entries;
    assert.deepEqual(
      entries.map((entry) => [entry.deploymentId, entry.storePath, entry.outcome, entry.requestedBy]),
      [
        ["d-2", SYS_C, "confirmed", "ci"],
        ["d-1", SYS_B, "confirmed", "ci"],
      ],
    );
    const fleet = await callMethod(address, "ListHistory", { limit: 1 }, t.adminToken);
    assert.equal((fleet.response as { entries: HistoryEntry[] }).entries.length, 1);
    assert.equal((await callMethod(address, "ListHistory", { hostName: "Not A Host!" }, t.adminToken)).code, "E_BAD_HOST_NAME");
  });

  test("rollback gives the host its previous confirmed system as a deployment, audited, without needing it in the cache", async () => {
    const result = await callMethod(address, "Rollback", { hostNames: ["web1"] }, t.adminToken);
    assert.equal(result.code, "ok", result.message);
    const response = result.response as RollbackResponse;
    assert.deepEqual(response.targets, [{ hostName: "web1", storePath: SYS_B, source: "previous" }]);
    const host = await t.controller.store.getHost("web1");
    assert.equal(host?.desiredSystem, SYS_B);
    assert.equal(host?.deploymentId, response.deploymentId);
    assert.equal(host?.desiredActivate, true);
    let audited;
    for (let tries = 0; tries < 200 && !audited; tries++) {
      audited = (await t.controller.store.audit.list(20)).find((entry) => entry.action === "rollback");
      if (!audited) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(audited?.target, response.deploymentId);
    assert.deepEqual(audited?.detail["hosts"], { web1: SYS_B });
    const history = await callMethod(address, "ListHistory", { hostName: "web1" }, t.adminToken);
    assert.deepEqual((history.response as { entries: HistoryEntry[] }).entries.map((entry) => [entry.deploymentId, entry.outcome]).slice(0, 2), [
      [response.deploymentId, "pending"],
      ["d-2", "confirmed"],
    ]);
  });

  test("a host with no previous system, a path outside its history or a generation number is refused and nothing changes", async () => {
    const before = await t.controller.store.listHosts();
    assert.equal((await callMethod(address, "Rollback", { hostNames: ["fresh1"] }, t.adminToken)).code, "E_NO_PREVIOUS_SYSTEM");
    assert.equal((await callMethod(address, "Rollback", { hostNames: ["web1", "fresh1"] }, t.adminToken)).code, "E_NO_PREVIOUS_SYSTEM");
    const outside = "/nix/store/9zy01hjzwvvia6h9dq5xar88v77fgh9x-never-ran";
    assert.equal((await callMethod(address, "Rollback", { hostNames: ["web1"], toStorePath: outside }, t.adminToken)).code, "E_NOT_IN_HISTORY");
    assert.equal((await callMethod(address, "Rollback", { hostNames: ["web1"], toStorePath: "41" }, t.adminToken)).code, "E_GENERATION_UNKNOWN");
    assert.equal((await callMethod(address, "Rollback", { hostNames: ["web1"], toStorePath: "../etc" }, t.adminToken)).code, "E_BAD_STORE_PATH");
    assert.equal((await callMethod(address, "Rollback", { hostNames: [] }, t.adminToken)).code, "E_BAD_ARGUMENT");
    assert.deepEqual(await t.controller.store.listHosts(), before);
  });

  test("--to the running or previous system needs no cache; a confirmed path the host may no longer hold does", async () => {
    // A is from before Ferry, never confirmed through it: refused.
    assert.equal((await callMethod(address, "Rollback", { hostNames: ["web1"], toStorePath: SYS_A }, t.adminToken)).code, "E_NOT_IN_HISTORY");
    assert.equal((await callMethod(address, "Rollback", { hostNames: ["web1"], toStorePath: SYS_C }, t.adminToken)).code, "ok");
    // Switched outside Ferry back to A: C becomes its previous system, B is only in its history.
    await t.controller.store.recordReport("web1", { currentSystem: SYS_A });
    assert.equal((await callMethod(address, "Rollback", { hostNames: ["web1"], toStorePath: SYS_B }, t.adminToken)).code, "E_PATH_NOT_IN_CACHE");
    const back = await callMethod(address, "Rollback", { hostNames: ["web1"] }, t.adminToken);
    assert.deepEqual((back.response as RollbackResponse).targets, [{ hostName: "web1", storePath: SYS_C, source: "previous" }]);
  });
});

function logLine(message: string, serial: number): Parameters<typeof encodeAgentFrame>[0] {
  return { $case: "log", value: { hostName: "web1", atMs: Date.now(), level: "info", message, serial, rolloutId: "", fieldsJson: "" } };
}

function streamLogs(request: Partial<StreamLogsRequest>, until: (lines: HostLogLine[]) => boolean, controller: TestController = t): Promise<HostLogLine[]> {
  const client = new OperatorServiceClient(`127.0.0.1:${controller.controller.grpcPort}`, credentials.createInsecure());
  const metadata = new Metadata();
  metadata.set("authorization", `Bearer ${controller.adminToken}`);
  const lines: HostLogLine[] = [];
  const stream = client.streamLogs({ hostName: "web1", follow: false, deploymentId: "", lines: 0, ...request }, metadata);
  return new Promise<HostLogLine[]>((resolve, reject) => {
    const done = (): void => {
      client.close();
      resolve(lines);
    };
    stream.on("data", (response: { line: HostLogLine }) => {
      lines.push(response.line);
      if (until(lines)) {
        stream.cancel();
        done();
      }
    });
    stream.on("end", done);
    stream.on("error", (error: ServiceError) => (error.code === 1 ? done() : reject(error)));
  });
}

describe("ferry logs over gRPC", () => {
  test("held lines, filtered by deployment, then followed lines as they come", async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${t.controller.httpPort}/agent`, { perMessageDeflate: false });
    await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
    const send = (body: Parameters<typeof encodeAgentFrame>[0]): void => ws.send(encodeAgentFrame(body), { binary: true });
    const welcomed = new Promise((resolve) => ws.once("message", resolve));
    send({
      $case: "hello",
      value: { hostName: "web1", token: TOKEN, currentSystem: SYS_C, agentVersion: "test", appliedSerial: 2, phase: HostPhase.HOST_PHASE_ACTIVE },
    });
    await welcomed;
    send(logLine("fetching b", 1));
    send(logLine("switching c", 2));
    // The round trip of a heartbeat shows the frames before it were handled.
    const acked = new Promise((resolve) => ws.once("message", resolve));
    send({ $case: "heartbeat", value: { sequence: 1, sentAtMs: Date.now(), currentSystem: "", phase: 0 } });
    await acked;

    const all = await streamLogs({}, () => false);
    assert.deepEqual(
      all.map((line) => line.message),
      ["fetching b", "switching c"],
    );
    const ofD1 = await streamLogs({ deploymentId: "d-1" }, () => false);
    assert.deepEqual(
      ofD1.map((line) => line.message),
      ["fetching b"],
    );
    assert.deepEqual(
      (await streamLogs({ lines: 1 }, () => false)).map((line) => line.message),
      ["switching c"],
    );

    const followed = streamLogs({ follow: true, lines: 1 }, (lines) => lines.length === 2);
    // The held line arrives first: the stream is open, so the next frame is followed.
    await new Promise((resolve) => setTimeout(resolve, 100));
    send(logLine("live line", 2));
    assert.deepEqual(
      (await followed).map((line) => line.message),
      ["switching c", "live line"],
    );
    ws.terminate();
  });

  test("an agent flooding log frames keeps only its newest lines on the controller", async () => {
    const small = await startTestController({
      agentFrameRate: { burst: 100_000, perSecond: 100_000 },
      hostLogLimits: { linesPerHost: 50, bytesPerHost: 64 * 1024, totalBytes: 128 * 1024 },
    });
    try {
      await small.controller.store.addHost("web1", hashToken(TOKEN), [], Date.now());
      const ws = new WebSocket(`ws://127.0.0.1:${small.controller.httpPort}/agent`, { perMessageDeflate: false });
      await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
      const send = (body: Parameters<typeof encodeAgentFrame>[0]): void => ws.send(encodeAgentFrame(body), { binary: true });
      const welcomed = new Promise((resolve) => ws.once("message", resolve));
      send({
        $case: "hello",
        value: { hostName: "web1", token: TOKEN, currentSystem: "", agentVersion: "test", appliedSerial: 0, phase: HostPhase.HOST_PHASE_IDLE },
      });
      await welcomed;
      const big = "z".repeat(4000);
      for (let index = 0; index < 5000; index++) send(logLine(`${index} ${big}`, 0));
      const acked = new Promise((resolve) => ws.once("message", resolve));
      send({ $case: "heartbeat", value: { sequence: 1, sentAtMs: Date.now(), currentSystem: "", phase: 0 } });
      await acked;
      ws.terminate();
      const held = await streamLogs({ lines: 100_000 }, () => false, small);
      assert.ok(held.length > 0 && held.length <= 50, `${held.length} lines held`);
      assert.ok(held.reduce((sum, line) => sum + line.message.length, 0) < 64 * 1024);
      assert.match(held.at(-1)?.message ?? "", /^4999 /);
    } finally {
      await small.stop();
    }
  });

  test("an unknown host is refused", async () => {
    await assert.rejects(
      streamLogs({ hostName: "ghost" }, () => false),
      (error: ServiceError) => error.metadata.get("ferry-error-code")[0] === "E_UNKNOWN_HOST",
    );
  });
});

describe("the log ring's bounds", () => {
  test("a host flooding lines keeps only its newest, within the per-host and total bytes", () => {
    const logs = new HostLogs({ linesPerHost: 100, bytesPerHost: 64 * 1024, totalBytes: 256 * 1024 });
    const line = (hostName: string, index: number, size = 100): HostLogLine => ({
      atMs: index,
      hostName,
      level: "info",
      message: `${index} ${"x".repeat(size)}`,
      serial: 1,
      rolloutId: "",
      fieldsJson: "",
    });
    logs.add(line("quiet", 0));
    for (let index = 0; index < 200_000; index++) logs.add(line("flood", index, index % 2 === 0 ? 100 : 4000));
    const usage = logs.usage();
    assert.ok(usage.bytes <= 256 * 1024, `${usage.bytes} bytes held`);
    assert.ok(usage.queued <= 2 * usage.lines + 1024, `${usage.queued} queued for ${usage.lines} lines`);
    const flood = logs.lines("flood");
    assert.ok(flood.length <= 100);
    assert.equal(flood.at(-1)?.atMs, 199_999);
    // The quiet host's line is older than the flood, but the flood's own bound went first.
    assert.equal(logs.lines("quiet").length, 1);
  });

  test("past the total, the oldest lines of any host go first", () => {
    const logs = new HostLogs({ linesPerHost: 1000, bytesPerHost: 1024 * 1024, totalBytes: 64 * 1024 });
    for (let index = 0; index < 2000; index++) {
      logs.add({ atMs: index, hostName: `h${index % 50}`, level: "info", message: "y".repeat(200), serial: 0, rolloutId: "", fieldsJson: "{}" });
    }
    assert.ok(logs.usage().bytes <= 64 * 1024);
    assert.equal(logs.lines("h0").length > 0, logs.lines("h49").length > 0);
    assert.ok(Math.min(...Array.from({ length: 50 }, (_, host) => logs.lines(`h${host}`)[0]?.atMs ?? Infinity)) > 1000);
  });

  test("a follower gets each new line until it stops", () => {
    const logs = new HostLogs();
    const seen: string[] = [];
    const stop = logs.follow("a", (line) => seen.push(line.message));
    logs.add({ atMs: 1, hostName: "a", level: "info", message: "one", serial: 0, rolloutId: "", fieldsJson: "" });
    logs.add({ atMs: 1, hostName: "b", level: "info", message: "other host", serial: 0, rolloutId: "", fieldsJson: "" });
    stop();
    logs.add({ atMs: 2, hostName: "a", level: "info", message: "two", serial: 0, rolloutId: "", fieldsJson: "" });
    assert.deepEqual(seen, ["one"]);
  });
});
