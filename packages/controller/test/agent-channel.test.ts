import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { generateKeyPairSync } from "node:crypto";
import { createIntent, hashToken, parseSecretKey, signIntent, type SigningKey } from "@ferry/core";
import {
  ActivationMode,
  AgentMessage,
  HostPhase,
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
  decodeControllerFrame,
  encodeAgentFrame,
  type AgentBody,
  type ControllerBody,
  type Refusal,
} from "@ferry/protocol";
import { pino } from "pino";
import { toHostStatus } from "../src/api/host-status.js";
import { recordDeployment } from "./record-deployment.js";
import { startTestController, type TestController } from "./controller-fixture.js";
import { until } from "./fake-fleet.js";

const SYS_A = "/nix/store/pz5wv3mkbf4bwihvsz8yqydfwb9bfhy5-nixos-system-web1";
const SYS_B = "/nix/store/1zy01hjzwvvia6h9dq5xar88v77fgh9x-nixos-system-web1";
const TOKEN = "web1-token-0123456789abcdef0123456789abcdef";
const OTHER_TOKEN = "db1-token-0123456789abcdef0123456789abcdef";
const STEP_MS = 3000;

let t: TestController;
const sockets: WebSocket[] = [];
/** Every line the controller logged, parsed. */
const logged: Record<string, unknown>[] = [];
const captureLog = pino({ level: "info" }, { write: (line: string) => logged.push(JSON.parse(line) as Record<string, unknown>) });

before(async () => {
  t = await startTestController({ heartbeatIntervalMs: 1000, log: captureLog });
  await t.controller.store.addHost("web1", hashToken(TOKEN), [], Date.now());
  await t.controller.store.addHost("db1", hashToken(OTHER_TOKEN), [], Date.now());
});
afterEach(() => {
  for (const socket of sockets.splice(0)) socket.terminate();
});
after(async () => {
  await t.stop();
});

function intentKey(name: string): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const raw = [privateKey.export({ format: "jwk" }).d, publicKey.export({ format: "jwk" }).x].map((part) => Buffer.from(part as string, "base64url"));
  return parseSecretKey(`${name}:${Buffer.concat(raw).toString("base64")}`);
}

function within<T>(promise: Promise<T>, what: string, ms = STEP_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

interface Client {
  ws: WebSocket;
  frames: ControllerBody[];
  /** The next frame not yet returned by next(). */
  next(): Promise<ControllerBody>;
  closed: Promise<{ code: number; reason: string }>;
  sendBody(body: AgentBody): void;
}

async function connect(): Promise<Client> {
  const ws = new WebSocket(`ws://127.0.0.1:${t.controller.httpPort}/agent`, { perMessageDeflate: false });
  sockets.push(ws);
  const frames: ControllerBody[] = [];
  let read = 0;
  let wake: (() => void) | undefined;
  ws.on("message", (data, isBinary) => {
    assert.ok(isBinary, "the controller sent a text frame");
    frames.push(decodeControllerFrame(Buffer.from(data as Buffer)).body);
    wake?.();
  });
  ws.on("error", () => undefined);
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })));
  await within(new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject)), "the WebSocket to open");
  return {
    ws,
    frames,
    closed,
    sendBody: (body) => ws.send(encodeAgentFrame(body), { binary: true }),
    async next() {
      while (read >= frames.length) await within(new Promise<void>((resolve) => (wake = resolve)), "a controller frame");
      return frames[read++] as ControllerBody;
    },
  };
}

const hello = (hostName: string, token: string, extra: Partial<Extract<AgentBody, { $case: "hello" }>["value"]> = {}): AgentBody => ({
  $case: "hello",
  value: { hostName, token, currentSystem: "", agentVersion: "test", appliedSerial: 0, phase: HostPhase.HOST_PHASE_IDLE, ...extra },
});

/** The connection ends with exactly one Refusal carrying `code`, as its last frame, and close code `closeCode`. */
async function expectRefusal(client: Client, code: string, closeCode: number): Promise<Refusal> {
  const closed = await within(client.closed, `the controller to close with ${closeCode}`);
  const refusals = client.frames.filter((frame): frame is Extract<ControllerBody, { $case: "refusal" }> => frame.$case === "refusal");
  assert.equal(refusals.length, 1, `frames: ${JSON.stringify(client.frames)}`);
  assert.equal(client.frames.at(-1)?.$case, "refusal");
  const refusal = (refusals[0] as Extract<ControllerBody, { $case: "refusal" }>).value;
  assert.equal(refusal.code, code, refusal.message);
  assert.equal(closed.code, closeCode);
  assert.equal(closed.reason, code);
  return refusal;
}

async function snapshot(): Promise<unknown> {
  return t.controller.store.listHosts();
}

describe("agent channel refusals", () => {
  test("wrong token → E_AUTH, 4001, fatal", async () => {
    const before = await snapshot();
    const client = await connect();
    client.sendBody(hello("web1", "not-the-token"));
    const refusal = await expectRefusal(client, "E_AUTH", 4001);
    assert.equal(refusal.fatal, true);
    assert.deepEqual(await snapshot(), before);
  });

  test("a token of another host → E_AUTH", async () => {
    const before = await snapshot();
    const client = await connect();
    client.sendBody(hello("web1", OTHER_TOKEN));
    await expectRefusal(client, "E_AUTH", 4001);
    assert.deepEqual(await snapshot(), before);
  });

  test("unknown host → the same refusal as a wrong token, and no host is created", async () => {
    const before = await snapshot();
    const wrongToken = await connect();
    wrongToken.sendBody(hello("web1", "not-the-token"));
    const forWrongToken = await expectRefusal(wrongToken, "E_AUTH", 4001);
    const unknown = await connect();
    unknown.sendBody(hello("ghost", TOKEN));
    const forUnknown = await expectRefusal(unknown, "E_AUTH", 4001);
    assert.deepEqual(forUnknown, forWrongToken, "a client must not tell an unknown host from a wrong token");
    assert.deepEqual(await snapshot(), before);
    assert.equal(await t.controller.store.getHost("ghost"), undefined);
  });

  test("host name with '/' → E_BAD_HOST_NAME, 4001", async () => {
    for (const name of ["web1/../db1", "../web1", ""]) {
      const before = await snapshot();
      const client = await connect();
      client.sendBody(hello(name, TOKEN));
      await expectRefusal(client, "E_BAD_HOST_NAME", 4001);
      assert.deepEqual(await snapshot(), before);
    }
  });

  test("a first frame other than hello → E_AUTH", async () => {
    const before = await snapshot();
    const client = await connect();
    client.sendBody({
      $case: "progress",
      value: { hostName: "web1", serial: 1, phase: HostPhase.HOST_PHASE_ACTIVE, message: "", bytesDone: 0, bytesTotal: 0 },
    });
    await expectRefusal(client, "E_AUTH", 4001);
    assert.deepEqual(await snapshot(), before);
  });

  test("a text frame → E_MALFORMED_FRAME, 4003", async () => {
    const before = await snapshot();
    const client = await connect();
    client.ws.send(JSON.stringify({ hello: { hostName: "web1", token: TOKEN } }));
    await expectRefusal(client, "E_MALFORMED_FRAME", 4003);
    assert.deepEqual(await snapshot(), before);
  });

  test("garbage bytes → E_MALFORMED_FRAME, 4003", async () => {
    const before = await snapshot();
    const client = await connect();
    client.ws.send(Buffer.from([0x08]), { binary: true });
    await expectRefusal(client, "E_MALFORMED_FRAME", 4003);
    assert.deepEqual(await snapshot(), before);
  });

  test("a frame with no body → E_MALFORMED_FRAME", async () => {
    const client = await connect();
    client.ws.send(AgentMessage.encode({ protocolVersion: PROTOCOL_VERSION, body: undefined }).finish(), { binary: true });
    await expectRefusal(client, "E_MALFORMED_FRAME", 4003);
  });

  test("protocol version 99 → E_PROTOCOL_VERSION, 4002", async () => {
    const before = await snapshot();
    const client = await connect();
    client.ws.send(AgentMessage.encode({ protocolVersion: 99, body: hello("web1", TOKEN) }).finish(), { binary: true });
    await expectRefusal(client, "E_PROTOCOL_VERSION", 4002);
    assert.deepEqual(await snapshot(), before);
  });

  test("an invalid current system in hello → E_BAD_STORE_PATH, nothing recorded", async () => {
    const before = await snapshot();
    const client = await connect();
    client.sendBody(hello("web1", TOKEN, { currentSystem: "/tmp/evil" }));
    await expectRefusal(client, "E_BAD_STORE_PATH", 4003);
    assert.deepEqual(await snapshot(), before);
  });

  test("a frame above 1 MiB closes the socket with 1009", async () => {
    const before = await snapshot();
    const client = await connect();
    client.ws.send(Buffer.alloc(MAX_FRAME_BYTES + 1, 0x41), { binary: true });
    const closed = await within(client.closed, "the close after an oversized frame");
    assert.equal(closed.code, 1009);
    assert.deepEqual(await snapshot(), before);
  });

  for (const body of [
    { $case: "progress", value: { hostName: "db1", serial: 1, phase: HostPhase.HOST_PHASE_FAILED, message: "x", bytesDone: 0, bytesTotal: 0 } },
    {
      $case: "result",
      value: {
        hostName: "db1",
        serial: 1,
        storePath: SYS_A,
        success: false,
        phase: HostPhase.HOST_PHASE_FAILED,
        errorCode: "E_X",
        errorMessage: "m",
        output: "o",
        currentSystem: SYS_A,
        finishedAtMs: 1,
        checksFailingBeforeAndAfter: [],
        checksRun: 0,
      },
    },
    { $case: "log", value: { hostName: "db1", atMs: 1, level: "info", message: "spoof", serial: 1, rolloutId: "", fieldsJson: "" } },
    { $case: "desiredRequest", value: { hostName: "db1" } },
  ] satisfies AgentBody[]) {
    test(`after a good hello, a ${body.$case} frame naming another host → E_FORBIDDEN_HOST, 4004`, async () => {
      const otherBefore = await t.controller.store.getHost("db1");
      const eventsBefore = await t.controller.store.listEvents("db1", 100);
      const client = await connect();
      client.sendBody(hello("web1", TOKEN));
      assert.equal((await client.next()).$case, "welcome");
      client.sendBody(body);
      await expectRefusal(client, "E_FORBIDDEN_HOST", 4004);
      assert.deepEqual(await t.controller.store.getHost("db1"), otherBefore);
      assert.deepEqual(await t.controller.store.listEvents("db1", 100), eventsBefore);
    });
  }

  test("a second hello on the same connection → E_MALFORMED_FRAME", async () => {
    const client = await connect();
    client.sendBody(hello("web1", TOKEN));
    assert.equal((await client.next()).$case, "welcome");
    client.sendBody(hello("db1", OTHER_TOKEN));
    await expectRefusal(client, "E_MALFORMED_FRAME", 4003);
  });
});

describe("agent channel happy path", () => {
  test("hello → Welcome (no DesiredSystem for a host never deployed), heartbeat → HeartbeatAck", async () => {
    const client = await connect();
    const before = Date.now();
    client.sendBody(hello("db1", OTHER_TOKEN, { currentSystem: SYS_B, agentVersion: "9.9.9" }));
    const welcome = await client.next();
    assert.equal(welcome.$case, "welcome");
    if (welcome.$case === "welcome") {
      assert.equal(welcome.value.hostName, "db1");
      assert.equal(welcome.value.heartbeatIntervalMs, 1000);
      assert.ok(welcome.value.serverTimeMs >= before);
    }
    client.sendBody({ $case: "heartbeat", value: { sequence: 41, sentAtMs: Date.now(), currentSystem: SYS_B, phase: HostPhase.HOST_PHASE_IDLE } });
    const ack = await client.next();
    assert.deepEqual(ack.$case === "heartbeatAck" && ack.value.sequence, 41);
    assert.deepEqual(
      client.frames.map((f) => f.$case),
      ["welcome", "heartbeatAck"],
    );
    const host = await t.controller.store.getHost("db1");
    assert.equal(host?.currentSystem, SYS_B);
    assert.equal(host?.agentVersion, "9.9.9");
    assert.ok((host?.lastSeenMs ?? 0) >= before);
  });

  test("an agent configured as DB1 is host db1: welcomed under the canonical name, its frames naming DB1 accepted", async () => {
    const client = await connect();
    client.sendBody(hello("DB1", OTHER_TOKEN, { currentSystem: SYS_B }));
    const welcome = await client.next();
    assert.deepEqual(welcome.$case === "welcome" && welcome.value.hostName, "db1");
    client.sendBody({ $case: "progress", value: { hostName: "Db1", serial: 0, phase: HostPhase.HOST_PHASE_IDLE, message: "", bytesDone: 0, bytesTotal: 0 } });
    client.sendBody({ $case: "heartbeat", value: { sequence: 7, sentAtMs: Date.now(), currentSystem: SYS_B, phase: HostPhase.HOST_PHASE_IDLE } });
    const ack = await client.next();
    assert.deepEqual(ack.$case === "heartbeatAck" && ack.value.sequence, 7, `frames: ${JSON.stringify(client.frames)}`);
    assert.deepEqual(
      (await t.controller.store.listHosts()).map((host) => host.name),
      ["db1", "web1"],
    );
  });

  test("a host with a desired system gets DesiredSystem right after Welcome; progress and result are recorded", async () => {
    const [deployed] = await recordDeployment(
      t.controller.store,
      "dep-1",
      [{ hostName: "web1", storePath: SYS_A }],
      ActivationMode.ACTIVATION_MODE_SWITCH,
      Date.now(),
    );
    assert.ok(deployed);
    const client = await connect();
    client.sendBody(hello("web1", TOKEN, { currentSystem: SYS_B }));
    assert.equal((await client.next()).$case, "welcome");
    const desired = await client.next();
    assert.deepEqual(desired, {
      $case: "desired",
      value: {
        hostName: "web1",
        storePath: SYS_A,
        serial: deployed.desiredSerial,
        deploymentId: "dep-1",
        rolloutId: "",
        mode: ActivationMode.ACTIVATION_MODE_SWITCH,
        activate: true,
        intent: undefined,
      },
    });

    client.sendBody({
      $case: "progress",
      value: { hostName: "web1", serial: deployed.desiredSerial, phase: HostPhase.HOST_PHASE_FETCHING, message: "fetching", bytesDone: 0, bytesTotal: 0 },
    });
    client.sendBody({
      $case: "result",
      value: {
        hostName: "web1",
        serial: deployed.desiredSerial,
        storePath: SYS_A,
        success: true,
        phase: HostPhase.HOST_PHASE_ACTIVE,
        errorCode: "",
        errorMessage: "",
        output: "",
        currentSystem: SYS_A,
        finishedAtMs: Date.now(),
        checksFailingBeforeAndAfter: [],
        checksRun: 0,
      },
    });
    // Heartbeats are answered on arrival, so their answer says nothing about the frames before them.
    const host = await until("the result recorded", async () => {
      const record = await t.controller.store.getHost("web1");
      return record?.phase === HostPhase.HOST_PHASE_ACTIVE ? record : undefined;
    });
    assert.equal(host?.phase, HostPhase.HOST_PHASE_ACTIVE);
    assert.equal(host?.appliedSerial, deployed.desiredSerial);
    assert.equal(host?.currentSystem, SYS_A);
    const events = await t.controller.store.listEvents("web1", 10);
    assert.equal(events.at(-1)?.kind, "activation-succeeded");
  });

  test("a signed intent recorded with the desired system reaches the agent unchanged, signature and all", async () => {
    const intent = signIntent(createIntent({ hostName: "signed1", storePath: SYS_B, mode: "boot", nowMs: Date.now(), expiresInMs: 60_000 }), [
      intentKey("ferry-ci-1"),
    ]);
    await t.controller.store.addHost("signed1", hashToken(TOKEN), [], Date.now());
    await recordDeployment(
      t.controller.store,
      "dep-signed",
      [{ hostName: "signed1", storePath: SYS_B, intent }],
      ActivationMode.ACTIVATION_MODE_BOOT,
      Date.now(),
    );
    const client = await connect();
    client.sendBody(hello("signed1", TOKEN));
    assert.equal((await client.next()).$case, "welcome");
    const desired = await client.next();
    assert.ok(desired.$case === "desired");
    assert.deepEqual(desired.value.intent, intent);
    assert.equal(desired.value.mode, ActivationMode.ACTIVATION_MODE_BOOT);
  });

  test("a newer connection for the same host supersedes the older one (E_SUPERSEDED, 4005)", async () => {
    const first = await connect();
    first.sendBody(hello("db1", OTHER_TOKEN));
    assert.equal((await first.next()).$case, "welcome");
    const second = await connect();
    second.sendBody(hello("db1", OTHER_TOKEN));
    assert.equal((await second.next()).$case, "welcome");
    const refusal = await expectRefusal(first, "E_SUPERSEDED", 4005);
    assert.equal(refusal.fatal, false);
    second.sendBody({ $case: "heartbeat", value: { sequence: 9, sentAtMs: Date.now(), currentSystem: "", phase: 0 } });
    assert.equal((await second.next()).$case, "heartbeatAck");
  });

  test("an agent ahead of a rebuilt controller gets later deployments numbered above what it applied", async () => {
    await t.controller.store.addHost("fresh1", hashToken(TOKEN), [], Date.now());
    const client = await connect();
    client.sendBody(hello("fresh1", TOKEN, { appliedSerial: 41, currentSystem: SYS_A, phase: HostPhase.HOST_PHASE_ACTIVE }));
    assert.equal((await client.next()).$case, "welcome");
    const host = await t.controller.store.getHost("fresh1");
    assert.equal(host?.desiredSerial, 41);
    assert.equal(host?.desiredSystem, "", "what the host should run is unchanged");
    const [deployed] = await recordDeployment(
      t.controller.store,
      "d-test",
      [{ hostName: "fresh1", storePath: SYS_B }],
      ActivationMode.ACTIVATION_MODE_SWITCH,
      Date.now(),
    );
    assert.equal(deployed?.desiredSerial, 42);
  });
});

describe("health checks failing before and after the switch", () => {
  test("a result naming them is stored, shown in the host's status, recorded as an event and logged with the names", async () => {
    await t.controller.store.addHost("chk1", hashToken(TOKEN), [], Date.now());
    const [deployed] = await recordDeployment(
      t.controller.store,
      "dep-chk",
      [{ hostName: "chk1", storePath: SYS_A }],
      ActivationMode.ACTIVATION_MODE_SWITCH,
      Date.now(),
    );
    assert.ok(deployed);
    const client = await connect();
    client.sendBody(hello("chk1", TOKEN, { currentSystem: SYS_B }));
    assert.equal((await client.next()).$case, "welcome");
    assert.equal((await client.next()).$case, "desired");
    client.sendBody({
      $case: "result",
      value: {
        hostName: "chk1",
        serial: deployed.desiredSerial,
        storePath: SYS_A,
        success: true,
        phase: HostPhase.HOST_PHASE_ACTIVE,
        errorCode: "",
        errorMessage: "",
        output: "",
        currentSystem: SYS_A,
        finishedAtMs: Date.now(),
        checksFailingBeforeAndAfter: ["systemd:nginx.service"],
        checksRun: 2,
      },
    });
    const host = await until("the result recorded", async () => {
      const record = await t.controller.store.getHost("chk1");
      return record?.phase === HostPhase.HOST_PHASE_ACTIVE ? record : undefined;
    });
    assert.deepEqual([host.checksFailingBeforeAndAfter, host.checksRun], [["systemd:nginx.service"], 2]);
    const status = toHostStatus(host, { isOnline: () => true, lastSeenMs: () => 0 });
    assert.deepEqual([status.checksFailingBeforeAndAfter, status.checksRun], [["systemd:nginx.service"], 2]);
    const events = await t.controller.store.listEvents("chk1", 10);
    assert.deepEqual(events.at(-1)?.data["checksFailingBeforeAndAfter"], ["systemd:nginx.service"]);
    const line = logged.find((entry) => entry["host"] === "chk1" && Array.isArray(entry["checksFailingBeforeAndAfter"]));
    assert.ok(line, "the controller logged the result with the check names");
    assert.equal(line["level"], 40, "as a warning");
    assert.match(String(line["msg"]), /checks failing before and after the switch: systemd:nginx\.service/);
  });

  test("a forwarded agent log line keeps its own fields (failingBefore, checks) in the controller's log", async () => {
    await t.controller.store.addHost("log1", hashToken(TOKEN), [], Date.now());
    const client = await connect();
    client.sendBody(hello("log1", TOKEN));
    assert.equal((await client.next()).$case, "welcome");
    const fields = { failingBefore: ["systemd:nginx.service"], checks: "FAIL systemd:nginx.service", host: "db1", level: 60 };
    client.sendBody({
      $case: "log",
      value: {
        hostName: "log1",
        atMs: 1,
        level: "warn",
        message: "checks already failing before the switch",
        serial: 5,
        rolloutId: "",
        fieldsJson: JSON.stringify(fields),
      },
    });
    client.sendBody({
      $case: "log",
      value: { hostName: "log1", atMs: 1, level: "info", message: "not json fields", serial: 5, rolloutId: "", fieldsJson: "{oops" },
    });
    await until("the second line logged", () => logged.find((entry) => entry["msg"] === "not json fields"));
    const line = logged.find((entry) => entry["msg"] === "checks already failing before the switch");
    assert.ok(line);
    assert.deepEqual(line["failingBefore"], ["systemd:nginx.service"]);
    assert.equal(line["checks"], "FAIL systemd:nginx.service");
    assert.equal(line["host"], "log1", "an agent's fields cannot replace the controller's own");
    assert.equal(line["level"], 30);
    assert.equal(line["agentLevel"], "warn");
    assert.ok(
      logged.some((entry) => entry["msg"] === "not json fields"),
      "a line with unreadable fields is still logged",
    );
  });
});
