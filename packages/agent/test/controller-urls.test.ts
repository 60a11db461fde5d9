// Several controller URLs: how the configuration names them, in which order
// and after which waits the link tries them, and that a new system counts as
// reaching the controller when any of them answers.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WebSocketServer } from "ws";
import { FerryError, silentLogger } from "@ferry/core";
import { decodeAgentFrame, encodeControllerFrame } from "@ferry/protocol/agent-channel";
import { compileAgentConfig, parseAgentConfig, requireControllerSettings } from "@ferry/agent";
import { ControllerLink } from "../src/controller-link.js";
import { ControllerRotation, RECONNECT_MIN_DELAY_MS, reconnectDelayMs } from "../src/controller-rotation.js";
import { confirmNewSystem } from "../src/confirmation.js";

const BASE = {
  hostName: "web1",
  tokenFile: "/run/secrets/ferry-token",
  substituters: ["http://127.0.0.1:7070/cache"],
  trustedPublicKeys: ["ferry-1:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="],
};
const A = "wss://ctl-a.example/agent";
const B = "wss://ctl-b.example/agent";

function refused(raw: Record<string, unknown>, code: string, pattern: RegExp): void {
  assert.throws(
    () => parseAgentConfig({ ...BASE, ...raw }),
    (error: unknown) => error instanceof FerryError && error.code === code && pattern.test(error.message),
    JSON.stringify(raw),
  );
}

describe("controllerUrl and controllerUrls", () => {
  test("either key gives the agent its list of URLs; null is not set", () => {
    assert.deepEqual(compileAgentConfig(parseAgentConfig({ ...BASE, controllerUrl: A })).controllerUrls, [A]);
    assert.deepEqual(compileAgentConfig(parseAgentConfig({ ...BASE, controllerUrls: [A, B] })).controllerUrls, [A, B]);
    assert.deepEqual(compileAgentConfig(parseAgentConfig({ ...BASE, controllerUrl: null, controllerUrls: [B] })).controllerUrls, [B]);
    assert.deepEqual(compileAgentConfig(parseAgentConfig({ ...BASE, controllerUrl: A, controllerUrls: null })).controllerUrls, [A]);
    assert.doesNotThrow(() => requireControllerSettings(parseAgentConfig({ ...BASE, controllerUrls: [A, B] })));
  });

  test("both keys set is a configuration error that says to keep one", () => {
    refused({ controllerUrl: A, controllerUrls: [B] }, "E_BAD_CONFIG", /controllerUrl and controllerUrls are both set/);
  });

  test("an empty or repeated list is refused", () => {
    refused({ controllerUrls: [] }, "E_BAD_CONFIG", /controllerUrls/);
    refused({ controllerUrls: [A, A] }, "E_BAD_CONFIG", /controllerUrls/);
    refused({ controllerUrls: "wss://ctl-a.example/agent" }, "E_BAD_CONFIG", /controllerUrls/);
  });

  test("a bad URL in the list is named by its index", () => {
    refused({ controllerUrls: [A, "https://ctl-b.example/agent"] }, "E_BAD_CONFIG", /controllerUrls\.1\b/);
    refused({ controllerUrls: [A, B, "ws://10.0.0.3:7070/agent"] }, "E_INSECURE_TRANSPORT", /controllerUrls\[2\] ws:\/\/10\.0\.0\.3/);
    assert.doesNotThrow(() => parseAgentConfig({ ...BASE, controllerUrls: [A, "ws://10.0.0.3:7070/agent"], allowInsecureTransport: true }));
  });

  test("without either key `ferry agent` still names controllerUrl as missing", () => {
    assert.throws(
      () => requireControllerSettings(parseAgentConfig(BASE)),
      (error: unknown) => error instanceof FerryError && /missing "controllerUrl": .*controllerUrls/.test(error.message),
    );
  });
});

/** A random source that returns the given values, then the last one forever. */
function sequence(...values: number[]): () => number {
  let next = 0;
  return () => values[Math.min(next++, values.length - 1)] as number;
}

describe("the reconnect policy", () => {
  test("with one URL: the capped exponential backoff of a single controller", () => {
    const delays = [1, 2, 3, 4, 5, 6, 7, 8].map((failures) => reconnectDelayMs(failures, 1, 60_000, () => 1));
    assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000]);
  });

  test("with several URLs the ceiling grows only once a full round failed", () => {
    const delays = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((failures) => reconnectDelayMs(failures, 3, 60_000, () => 1));
    assert.deepEqual(delays, [1000, 1000, 1000, 1000, 1000, 2000, 1000, 1000, 4000]);
  });

  test("the wait is jittered but never below half the shortest ceiling", () => {
    assert.equal(
      reconnectDelayMs(1, 2, 60_000, () => 0),
      RECONNECT_MIN_DELAY_MS / 2,
    );
    assert.equal(
      reconnectDelayMs(4, 2, 60_000, () => 0.5),
      1000,
    );
  });

  test("each failure moves to the next URL, wrapping round; a welcome starts a new round", () => {
    const rotation = new ControllerRotation([A, B, "wss://ctl-c.example/agent"], 60_000, sequence(0.99, 1));
    // The start is random: 0.99 picks the last URL.
    assert.equal(rotation.url, "wss://ctl-c.example/agent");
    const tried: string[] = [];
    let clock = 0;
    for (let i = 0; i < 6; i++) {
      clock += rotation.fail();
      tried.push(rotation.url);
    }
    assert.deepEqual(tried, [A, B, "wss://ctl-c.example/agent", A, B, "wss://ctl-c.example/agent"]);
    // Two full rounds on a fake clock: five short waits and one doubled one.
    assert.equal(clock, 5 * 1000 + 2000);
    rotation.welcomed();
    assert.equal(rotation.fail(), 1000);
    assert.equal(rotation.url, A);
  });

  test("a dead first replica costs one short wait before the next is tried", () => {
    const rotation = new ControllerRotation(["ws://127.0.0.1:1/agent", A], 60_000, sequence(0, 1));
    assert.equal(rotation.url, "ws://127.0.0.1:1/agent");
    assert.ok(rotation.fail() <= 2 * RECONNECT_MIN_DELAY_MS);
    assert.equal(rotation.url, A);
  });
});

/** A controller that welcomes anyone and answers heartbeats: what the link needs, nothing else. */
function fakeController(): Promise<{ url: string; close: () => Promise<void> }> {
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  server.on("connection", (socket) => {
    socket.on("message", (data) => {
      const body = decodeAgentFrame(new Uint8Array(data as Buffer)).body;
      if (body.$case === "hello") {
        socket.send(
          encodeControllerFrame({ $case: "welcome", value: { hostName: body.value.hostName, heartbeatIntervalMs: 60_000, serverTimeMs: Date.now() } }),
        );
      }
      if (body.$case === "heartbeat")
        socket.send(encodeControllerFrame({ $case: "heartbeatAck", value: { sequence: body.value.sequence, serverTimeMs: Date.now() } }));
    });
  });
  return new Promise((resolve) =>
    server.on("listening", () => {
      const { port } = server.address() as { port: number };
      resolve({ url: `ws://127.0.0.1:${port}/agent`, close: () => new Promise((done) => server.close(() => done())) });
    }),
  );
}

/** A loopback URL nothing listens on: the port was just free. */
async function deadUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return `ws://127.0.0.1:${port}/agent`;
}

describe("the new system reaches the controller through any URL", () => {
  let dir: string;
  let live: { url: string; close: () => Promise<void> };
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "ferry-urls-"));
    writeFileSync(join(dir, "token"), "token\n");
    live = await fakeController();
  });
  after(async () => {
    await live.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function link(urls: string[]): ControllerLink {
    return new ControllerLink({
      urls,
      hostName: "web1",
      tokenFile: join(dir, "token"),
      heartbeatIntervalMs: 60_000,
      reconnectMaxDelayMs: 60_000,
      log: silentLogger(),
      agentVersion: "test",
      hello: () => ({ currentSystem: "", appliedSerial: 0, phase: 0 }),
      // Start at the first URL, the dead one.
      random: sequence(0, 0.5),
    });
  }

  function confirm(controller: ControllerLink, withinMs: number): ReturnType<typeof confirmNewSystem> {
    const deps = {
      checks: [],
      runner: { run: () => Promise.reject(new Error("no command runs here")) } as never,
      log: silentLogger(),
      now: Date.now,
      sleep: (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)),
      heartbeat: (timeoutMs: number) => controller.reachable(timeoutMs),
    };
    return confirmNewSystem(deps, Date.now() + withinMs, [], true);
  }

  test("one dead URL, one alive: confirmed", async () => {
    const controller = link([await deadUrl(), live.url]);
    controller.start();
    try {
      const confirmation = await confirm(controller, 20_000);
      assert.equal(confirmation.checksRun, 0);
      assert.equal(controller.connected, true);
    } finally {
      controller.stop();
    }
  });

  test("every URL dead: E_CONFIRM_TIMEOUT", async () => {
    const controller = link([await deadUrl(), await deadUrl()]);
    controller.start();
    try {
      await assert.rejects(confirm(controller, 1500), (error: unknown) => error instanceof FerryError && error.code === "E_CONFIRM_TIMEOUT");
    } finally {
      controller.stop();
    }
  });
});
