import { EventEmitter } from "node:events";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type WebSocketType from "ws";
import type { IncomingMessage } from "node:http";
import { classifyTlsFailure, fileError, isErrorCode, readTlsFiles, toFerryError, type Logger, type TlsMaterial } from "@ferry/core";
import {
  MAX_FRAME_BYTES,
  decodeControllerFrame,
  encodeAgentFrame,
  type AgentBody,
  type DesiredSystem,
  type DryActivateCommand,
  type Hello,
  type Refusal,
} from "@ferry/protocol/agent-channel";
import { ControllerRotation } from "./controller-rotation.js";

// Loaded with require, not import: ws through its ES-module wrapper cost 7 MiB more peak memory (56 against 49 MiB for
// ws alone), and the idle agent's peak went from 82.5 to 79.1 MiB with this change.
const WebSocket = createRequire(import.meta.url)("ws") as typeof WebSocketType;
type WebSocket = WebSocketType;

export interface LinkOptions {
  /** The controller's agent endpoints (several replicas, or one); the link holds one at a time. */
  urls: readonly string[];
  hostName: string;
  tokenFile: string;
  /** CA bundle and client certificate for wss://; read at every connection, so renewed files apply without a restart. */
  tls?: { caFile?: string | undefined; certFile?: string | undefined; keyFile?: string | undefined };
  heartbeatIntervalMs: number;
  reconnectMaxDelayMs: number;
  log: Logger;
  /** This build's version, as `ferry status` shows it. */
  agentVersion: string;
  /** What to say in Hello: read fresh at every connection. */
  hello: () => Omit<Hello, "hostName" | "token" | "agentVersion">;
  /** The start URL and the jitter; Math.random unless a test fixes them. */
  random?: () => number;
}

export interface LinkEvents {
  desired: [DesiredSystem];
  dryActivate: [DryActivateCommand];
  connected: [];
  disconnected: [];
  refused: [Refusal];
  /** A connection attempt (or a link) ended; the next one is scheduled. */
  attemptFailed: [];
}

/**
 * The agent's outbound connection, to one of the controller URLs at a time.
 * It reconnects forever, moving to the next URL after each failure, with
 * capped, jittered exponential backoff (controller-rotation.ts), so a fleet
 * does not stampede a controller that comes back.
 */
export class ControllerLink extends EventEmitter<LinkEvents> {
  private socket: WebSocket | undefined;
  private welcomed = false;
  private stopped = false;
  private readonly rotation: ControllerRotation;
  private sequence = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readonly pendingAcks = new Map<number, (answered: boolean) => void>();

  constructor(private readonly options: LinkOptions) {
    super();
    this.rotation = new ControllerRotation(options.urls, options.reconnectMaxDelayMs, options.random);
  }

  get connected(): boolean {
    return this.welcomed;
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    clearInterval(this.heartbeatTimer);
    this.socket?.terminate();
  }

  /** Sends when connected; returns false otherwise (callers keep what must survive). */
  send(body: AgentBody): boolean {
    if (!this.welcomed || this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(encodeAgentFrame(body), { binary: true });
    return true;
  }

  /** Resolves true when the controller answers a heartbeat within `timeoutMs`. */
  roundTrip(timeoutMs: number, currentSystem = ""): Promise<boolean> {
    const sequence = ++this.sequence;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pendingAcks.delete(sequence);
        resolve(false);
      }, timeoutMs);
      this.pendingAcks.set(sequence, (answered) => {
        clearTimeout(timer);
        resolve(answered);
      });
      if (!this.send({ $case: "heartbeat", value: { sequence, sentAtMs: Date.now(), currentSystem, phase: 0 } })) {
        clearTimeout(timer);
        this.pendingAcks.delete(sequence);
        resolve(false);
      }
    });
  }

  /**
   * A round trip for the checks around a switch. With the link down, the
   * pending reconnect is brought forward instead of waiting out the backoff,
   * so each call tries a controller (the next URL after each failure): the
   * new system counts as reaching the controller if it reaches any replica.
   */
  async reachable(timeoutMs: number, currentSystem = ""): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    if (!this.welcomed) {
      if (this.reconnectTimer !== undefined) {
        clearTimeout(this.reconnectTimer);
        this.connect();
      }
      if (!(await this.welcomeWithin(timeoutMs))) return false;
    }
    return this.roundTrip(Math.max(1, deadline - Date.now()), currentSystem);
  }

  private welcomeWithin(timeoutMs: number): Promise<boolean> {
    if (this.welcomed) return Promise.resolve(true);
    return new Promise((resolve) => {
      const settle = (welcomed: boolean): void => {
        clearTimeout(timer);
        this.off("connected", onConnected);
        this.off("attemptFailed", onFailed);
        resolve(welcomed);
      };
      const onConnected = (): void => settle(true);
      const onFailed = (): void => settle(false);
      const timer = setTimeout(() => settle(false), timeoutMs);
      this.on("connected", onConnected);
      this.on("attemptFailed", onFailed);
    });
  }

  private connect(): void {
    this.reconnectTimer = undefined;
    if (this.stopped) return;
    const { log } = this.options;
    const url = this.rotation.url;
    let token: string;
    try {
      token = readFileSync(this.options.tokenFile, "utf8").trim();
    } catch (error) {
      const failure = fileError(error, this.options.tokenFile, "agent token file");
      log.error({ code: failure.code, tokenFile: this.options.tokenFile, err: failure.message }, "cannot read the agent token");
      return this.scheduleReconnect();
    }
    let tls: TlsMaterial;
    try {
      tls = this.readTls();
    } catch (error) {
      const failure = toFerryError(error, "E_TLS_MATERIAL");
      log.error({ code: failure.code, err: failure.message }, "cannot read the TLS files");
      return this.scheduleReconnect();
    }
    const socket = new WebSocket(url, { maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false, handshakeTimeout: 10_000, ...tls });
    this.socket = socket;
    socket.on("unexpected-response", (_request, response: IncomingMessage) => {
      const code = String(response.headers["x-ferry-error-code"] ?? "");
      log.error({ code: isErrorCode(code) ? code : "E_CONTROLLER_UNREACHABLE", status: response.statusCode }, "the controller refused the agent link");
      response.resume();
      socket.terminate();
    });
    socket.on("open", () => {
      socket.send(
        encodeAgentFrame({
          $case: "hello",
          value: { hostName: this.options.hostName, token, agentVersion: this.options.agentVersion, ...this.options.hello() },
        }),
        {
          binary: true,
        },
      );
    });
    socket.on("message", (data, isBinary) => {
      if (!isBinary) return;
      let frame;
      try {
        frame = decodeControllerFrame(Buffer.from(data as Buffer));
      } catch (error) {
        log.warn({ err: (error as Error).message }, "undecodable frame from controller; reconnecting");
        socket.terminate();
        return;
      }
      const body = frame.body;
      switch (body.$case) {
        case "welcome":
          this.welcomed = true;
          this.rotation.welcomed();
          log.info({ url }, "connected to controller");
          this.heartbeatTimer = setInterval(() => void this.roundTrip(this.options.heartbeatIntervalMs), this.options.heartbeatIntervalMs);
          this.emit("connected");
          return;
        case "heartbeatAck":
          this.pendingAcks.get(body.value.sequence)?.(true);
          this.pendingAcks.delete(body.value.sequence);
          return;
        case "desired":
          this.emit("desired", body.value);
          return;
        case "dryActivate":
          this.emit("dryActivate", body.value);
          return;
        case "refusal":
          log.error({ code: body.value.code, fatal: body.value.fatal }, `controller refused: ${body.value.message}`);
          this.emit("refused", body.value);
          return;
      }
    });
    socket.on("error", (error) => {
      // A certificate problem will not fix itself: say so loudly, with the code that names the fix.
      const tlsCode = classifyTlsFailure(error);
      if (tlsCode) log.error({ code: tlsCode, url, err: error.message }, "TLS with the controller failed");
      else log.debug({ url, err: error.message }, "controller link error");
    });
    socket.on("close", (code, reason) => {
      const wasWelcomed = this.welcomed;
      this.welcomed = false;
      clearInterval(this.heartbeatTimer);
      for (const settle of this.pendingAcks.values()) settle(false);
      this.pendingAcks.clear();
      if (wasWelcomed) {
        log.warn({ url, closeCode: code, reason: reason.toString() }, "lost the controller link");
        this.emit("disconnected");
      }
      this.scheduleReconnect();
    });
  }

  private readTls(): TlsMaterial {
    const files = this.options.tls;
    if (!files) return {};
    return readTlsFiles({
      ca: files.caFile ? { file: files.caFile, what: "caFile" } : undefined,
      cert: files.certFile ? { file: files.certFile, what: "tlsCertFile" } : undefined,
      key: files.keyFile ? { file: files.keyFile, what: "tlsKeyFile" } : undefined,
    });
  }

  private scheduleReconnect(): void {
    this.emit("attemptFailed");
    if (this.stopped) return;
    const delay = this.rotation.fail();
    this.options.log.debug({ attempt: this.rotation.failed, url: this.rotation.url, delayMs: Math.round(delay) }, "reconnecting");
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }
}
