import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  AgentMessage,
  ActivationMode,
  ControllerMessage,
  FrameError,
  HostPhase,
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
  decodeAgentFrame,
  decodeControllerFrame,
  encodeAgentFrame,
  encodeControllerFrame,
  type AgentBody,
  type ControllerBody,
} from "@ferry/protocol";

const PATH = "/nix/store/pz5wv3mkbf4bwihvsz8yqydfwb9bfhy5-nixos-system-web1";
type FrameCode = FrameError["code"];

function throwsFrame(fn: () => unknown, code: FrameCode): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof FrameError, `expected a FrameError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return true;
  });
}

// One body per oneof case, with every field set to a non-default value so a
// field lost in encoding or decoding shows up in deepEqual.
const AGENT_BODIES: AgentBody[] = [
  {
    $case: "hello",
    value: { hostName: "web1", token: "tok-ü", currentSystem: PATH, agentVersion: "0.1.0", appliedSerial: 41, phase: HostPhase.HOST_PHASE_ACTIVE },
  },
  { $case: "heartbeat", value: { sequence: 7, sentAtMs: 1_717_000_000_123, currentSystem: PATH, phase: HostPhase.HOST_PHASE_FETCHING } },
  {
    $case: "progress",
    value: { hostName: "web1", serial: 42, phase: HostPhase.HOST_PHASE_FETCHED, message: "fetched 3 paths", bytesDone: 1 << 20, bytesTotal: 2 ** 40 },
  },
  {
    $case: "result",
    value: {
      hostName: "web1",
      serial: Number.MAX_SAFE_INTEGER,
      storePath: PATH,
      success: false,
      phase: HostPhase.HOST_PHASE_ROLLED_BACK,
      errorCode: "E_ACTIVATION_FAILED",
      errorMessage: "switch-to-configuration exited with 4",
      output: "line 1\nline 2\n\u0000binary?",
      currentSystem: PATH,
      finishedAtMs: -5,
      checksFailingBeforeAndAfter: ["systemd:nginx.service", "command:/bin/sh -c ü"],
      checksRun: 3,
    },
  },
  {
    $case: "log",
    value: {
      hostName: "web1",
      atMs: 123,
      level: "warn",
      message: "disk almost full",
      serial: 3,
      rolloutId: "r-1",
      fieldsJson: '{"failingBefore":["systemd:nginx.service"]}',
    },
  },
  { $case: "desiredRequest", value: { hostName: "web1" } },
  {
    $case: "dryActivateOutcome",
    value: { requestId: "ab12", hostName: "web1", success: true, errorCode: "", errorMessage: "", output: "would start x.service" },
  },
];

const CONTROLLER_BODIES: ControllerBody[] = [
  { $case: "welcome", value: { hostName: "web1", heartbeatIntervalMs: 10_000, serverTimeMs: 1_717_000_000_000 } },
  { $case: "heartbeatAck", value: { sequence: 7, serverTimeMs: 99 } },
  {
    $case: "desired",
    value: {
      hostName: "web1",
      storePath: PATH,
      serial: 42,
      deploymentId: "d-1",
      rolloutId: "r-1",
      mode: ActivationMode.ACTIVATION_MODE_BOOT,
      activate: true,
      intent: { intent: `ferry-intent-v1;web1;${PATH};boot;7;1;2`, signatures: [`ci-1:${"A".repeat(86)}==`] },
    },
  },
  { $case: "refusal", value: { code: "E_AUTH", message: "wrong token", fatal: true } },
  { $case: "dryActivate", value: { requestId: "ab12", storePath: PATH, intent: undefined } },
];

describe("frame round trips", () => {
  for (const body of AGENT_BODIES) {
    test(`agent ${body.$case}`, () => {
      const frame = decodeAgentFrame(encodeAgentFrame(body));
      assert.equal(frame.protocolVersion, PROTOCOL_VERSION);
      assert.deepEqual(frame.body, body);
    });
  }
  for (const body of CONTROLLER_BODIES) {
    test(`controller ${body.$case}`, () => {
      const frame = decodeControllerFrame(encodeControllerFrame(body));
      assert.equal(frame.protocolVersion, PROTOCOL_VERSION);
      assert.deepEqual(frame.body, body);
    });
  }

  test("the bodies above cover every oneof case in the .proto", () => {
    const proto = readFileSync(fileURLToPath(new URL("../../../proto/ferry/v1/agent.proto", import.meta.url)), "utf8");
    const cases = (message: string): string[] => {
      const block = new RegExp(`message ${message} \\{[^}]*?oneof body \\{([^}]*)\\}`).exec(proto)?.[1];
      assert.ok(block, `no oneof body in ${message}`);
      return [...block.matchAll(/^\s*\w+\s+(\w+)\s*=\s*\d+;/gm)].map((m) => (m[1] as string).replace(/_(\w)/g, (_, c: string) => c.toUpperCase())).sort();
    };
    assert.deepEqual(AGENT_BODIES.map((body) => body.$case).sort(), cases("AgentMessage"));
    assert.deepEqual(CONTROLLER_BODIES.map((body) => body.$case).sort(), cases("ControllerMessage"));
  });

  test("bodies with all-default fields survive too", () => {
    const frame = decodeAgentFrame(encodeAgentFrame({ $case: "desiredRequest", value: { hostName: "" } }));
    assert.deepEqual(frame.body, { $case: "desiredRequest", value: { hostName: "" } });
  });
});

describe("frame errors", () => {
  test("a wrong protocol version → E_PROTOCOL_VERSION, naming both versions", () => {
    for (const version of [0, 2, 99, 2 ** 32 - 1]) {
      const agent = AgentMessage.encode({ protocolVersion: version, body: { $case: "desiredRequest", value: { hostName: "web1" } } }).finish();
      throwsFrame(() => decodeAgentFrame(agent), "E_PROTOCOL_VERSION");
      const controller = ControllerMessage.encode({
        protocolVersion: version,
        body: { $case: "heartbeatAck", value: { sequence: 1, serverTimeMs: 1 } },
      }).finish();
      throwsFrame(() => decodeControllerFrame(controller), "E_PROTOCOL_VERSION");
    }
    try {
      decodeAgentFrame(AgentMessage.encode({ protocolVersion: 99, body: { $case: "desiredRequest", value: { hostName: "x" } } }).finish());
    } catch (error) {
      assert.match((error as Error).message, /99/);
      assert.match((error as Error).message, new RegExp(String(PROTOCOL_VERSION)));
    }
  });

  test("a frame with no body → E_MALFORMED_FRAME", () => {
    const empty = AgentMessage.encode({ protocolVersion: PROTOCOL_VERSION, body: undefined }).finish();
    assert.deepEqual([...empty], [0x08, PROTOCOL_VERSION]);
    throwsFrame(() => decodeAgentFrame(empty), "E_MALFORMED_FRAME");
    throwsFrame(() => decodeControllerFrame(empty), "E_MALFORMED_FRAME");
    // The body field with the wrong wire type is skipped, leaving no body.
    throwsFrame(() => decodeAgentFrame(Uint8Array.from([0x08, PROTOCOL_VERSION, 0x50, 0x01])), "E_MALFORMED_FRAME");
  });

  test("undecodable bytes → E_MALFORMED_FRAME", () => {
    const cases: [string, number[]][] = [
      ["truncated varint", [0x08]],
      ["truncated varint after the version", [0x08, PROTOCOL_VERSION, 0x52, 0x02, 0x28, 0xff]],
      ["length beyond the end", [0x08, PROTOCOL_VERSION, 0x52, 0x05, 0x01]],
      ["invalid wire type 7", [0x0f]],
      ["invalid wire type 6 after the version", [0x08, PROTOCOL_VERSION, 0x56]],
      // applied_serial = 2^64-1 does not fit a JavaScript number.
      ["uint64 beyond 2^53", [0x08, PROTOCOL_VERSION, 0x52, 0x0b, 0x28, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]],
    ];
    for (const [name, bytes] of cases) {
      assert.throws(
        () => decodeAgentFrame(Uint8Array.from(bytes)),
        (error: unknown) => error instanceof FrameError && error.code === "E_MALFORMED_FRAME",
        name,
      );
    }
    throwsFrame(() => decodeControllerFrame(Uint8Array.from([0x08, PROTOCOL_VERSION, 0x6a, 0x7f])), "E_MALFORMED_FRAME");
  });

  test("random garbage never escapes as anything but a FrameError", () => {
    // Deterministic xorshift so a failure reproduces.
    let seed = 0x9e3779b9;
    const next = (): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return seed >>> 0;
    };
    const seen = new Set<FrameCode>();
    for (let i = 0; i < 3000; i++) {
      const bytes = Uint8Array.from({ length: 1 + (next() % 64) }, () => next() & 0xff);
      for (const decode of [decodeAgentFrame, decodeControllerFrame] as ((b: Uint8Array) => unknown)[]) {
        try {
          decode(bytes);
        } catch (error) {
          assert.ok(error instanceof FrameError, `bytes ${Buffer.from(bytes).toString("hex")}: ${String(error)}`);
          seen.add(error.code);
        }
      }
    }
    assert.ok(seen.has("E_MALFORMED_FRAME"));
    assert.ok(seen.has("E_PROTOCOL_VERSION"));
  });

  test("frames above MAX_FRAME_BYTES → E_FRAME_TOO_LARGE, before decoding", () => {
    assert.equal(MAX_FRAME_BYTES, 1024 * 1024);
    throwsFrame(() => decodeAgentFrame(new Uint8Array(MAX_FRAME_BYTES + 1)), "E_FRAME_TOO_LARGE");
    throwsFrame(() => decodeControllerFrame(new Uint8Array(MAX_FRAME_BYTES + 1).fill(0xff)), "E_FRAME_TOO_LARGE");
    // A valid frame just above the limit is still refused by size.
    const big = encodeAgentFrame({
      $case: "log",
      value: { hostName: "web1", atMs: 1, level: "info", message: "x".repeat(MAX_FRAME_BYTES), serial: 1, rolloutId: "", fieldsJson: "" },
    });
    assert.ok(big.length > MAX_FRAME_BYTES);
    throwsFrame(() => decodeAgentFrame(big), "E_FRAME_TOO_LARGE");
  });

  test("a frame of exactly MAX_FRAME_BYTES is accepted", () => {
    const overhead = encodeAgentFrame({
      $case: "log",
      value: { hostName: "web1", atMs: 1, level: "info", message: "", serial: 1, rolloutId: "", fieldsJson: "" },
    }).length;
    // Grow the message until the frame is exactly at the limit (the length varints grow too).
    let size = MAX_FRAME_BYTES - overhead - 6;
    let frame: Uint8Array = new Uint8Array();
    for (let i = 0; i < 10 && frame.length !== MAX_FRAME_BYTES; i++) {
      frame = encodeAgentFrame({
        $case: "log",
        value: { hostName: "web1", atMs: 1, level: "info", message: "y".repeat(size), serial: 1, rolloutId: "", fieldsJson: "" },
      });
      size += MAX_FRAME_BYTES - frame.length;
    }
    assert.equal(frame.length, MAX_FRAME_BYTES);
    assert.equal(decodeAgentFrame(frame).body.$case, "log");
  });
});
