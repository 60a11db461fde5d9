// Shared by the dashboard tests: closures put in a controller's cache over
// HTTP, and fake agents (real WebSockets) that answer desired systems as told:
// at once, when released, or with a failure and its output.
import { createHash, randomBytes } from "node:crypto";
import WebSocket from "ws";
import { toNixBase32 } from "@ferry/core";
import { HostPhase, decodeControllerFrame, encodeAgentFrame, type AgentBody } from "@ferry/protocol";

/** Puts a one-path closure (NAR and narinfo) in the controller's cache (or each of several); returns its store path. */
export async function cachedPath(baseUrls: string | readonly string[], adminToken: string, name: string): Promise<string> {
  const bytes = randomBytes(256);
  const digest = toNixBase32(createHash("sha256").update(bytes).digest());
  const path = `/nix/store/${toNixBase32(randomBytes(20))}-${name}`;
  const nar = `nar/${digest}.nar`;
  const narinfo = [
    `StorePath: ${path}`,
    `URL: ${nar}`,
    "Compression: none",
    `NarHash: sha256:${digest}`,
    "NarSize: 256",
    "References: ",
    `Sig: test:${randomBytes(64).toString("base64")}`,
    "",
  ].join("\n");
  const authorization = `Bearer ${adminToken}`;
  for (const baseUrl of typeof baseUrls === "string" ? [baseUrls] : baseUrls) {
    for (const [file, body] of [
      [nar, bytes],
      [`${path.slice(11, 43)}.narinfo`, narinfo],
    ] as const) {
      const response = await fetch(`${baseUrl}/cache/${file}`, { method: "PUT", body, headers: { authorization } });
      if (response.status !== 201) throw new Error(`cache PUT ${file}: ${response.status}`);
    }
  }
  return path;
}

export interface FakeAgentOptions {
  /** Activations wait for release() (prefetches are answered at once). */
  hold?: boolean;
  /** Every activation fails with E_ACTIVATION_FAILED and this output. */
  failWith?: string;
}

export interface FakeAgent {
  socket: WebSocket;
  /** Answers every held activation with success. */
  release(): void;
  /** Activations waiting for release(). */
  readonly held: number;
  /** Every desired system received, in order. */
  readonly desired: readonly { serial: number; storePath: string; activate: boolean }[];
  close(): void;
}

export async function fakeAgent(httpPort: number, hostName: string, token: string, options: FakeAgentOptions = {}): Promise<FakeAgent> {
  const ws = new WebSocket(`ws://127.0.0.1:${httpPort}/agent`, { perMessageDeflate: false });
  ws.on("error", () => undefined);
  let current = "";
  let held: (() => void)[] = [];
  const desired: { serial: number; storePath: string; activate: boolean }[] = [];
  const send = (body: AgentBody): void => {
    if (ws.readyState === WebSocket.OPEN) ws.send(encodeAgentFrame(body), { binary: true });
  };
  const answer = (serial: number, storePath: string, activate: boolean): void => {
    const failed = activate && options.failWith !== undefined;
    if (activate && !failed) current = storePath;
    send({
      $case: "result",
      value: {
        hostName,
        serial,
        storePath,
        success: !failed,
        phase: failed ? HostPhase.HOST_PHASE_FAILED : activate ? HostPhase.HOST_PHASE_ACTIVE : HostPhase.HOST_PHASE_FETCHED,
        errorCode: failed ? "E_ACTIVATION_FAILED" : "",
        errorMessage: failed ? "switch-to-configuration failed" : "",
        output: failed ? (options.failWith as string) : "",
        currentSystem: current,
        finishedAtMs: Date.now(),
        checksFailingBeforeAndAfter: [],
        checksRun: failed ? 0 : 1,
      },
    });
  };
  ws.on("message", (data) => {
    const body = decodeControllerFrame(Buffer.from(data as Buffer)).body;
    if (body.$case !== "desired") return;
    const { serial, storePath, activate } = body.value;
    desired.push({ serial, storePath, activate });
    if (activate && options.hold) held.push(() => answer(serial, storePath, activate));
    else answer(serial, storePath, activate);
  });
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  send({ $case: "hello", value: { hostName, token, currentSystem: "", agentVersion: "fake-1.0", appliedSerial: 0, phase: HostPhase.HOST_PHASE_IDLE } });
  return {
    socket: ws,
    release() {
      const waiting = held;
      held = [];
      for (const reply of waiting) reply();
    },
    get held() {
      return held.length;
    },
    desired,
    close: () => ws.terminate(),
  };
}

export async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
