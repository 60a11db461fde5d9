// A worker process of the agents bench: thousands of simulated agents, each
// one WebSocket speaking the real agent protocol (packages/agent/src/
// controller-link.ts, reconciler.ts, transaction.ts) with no Nix behind it.
// A prefetch is answered at once (progress FETCHING, result FETCHED); an
// activation reports FETCHING, ACTIVATING and CONFIRMING, makes the
// confirming heartbeat round trip, then reports ACTIVE on the new path.
// Started by sim-fleet.ts with an IPC channel; events go back in batches.
import WebSocket from "ws";
import {
  HostPhase,
  MAX_FRAME_BYTES,
  decodeControllerFrame,
  encodeAgentFrame,
  type ActivationResult,
  type AgentBody,
  type DesiredSystem,
} from "@ferry/protocol";
import type { AtTuple, DesiredTuple, EventsMessage, RefusalTuple, ResultTuple, RttTuple, SimAgentSpec, StartMessage, ToWorker } from "./messages.js";

/** As the real agent: first retry after 0.25–1 s, ceilings doubling up to reconnectMaxDelay. */
const RECONNECT_MIN_DELAY_MS = 500;
const HANDSHAKE_TIMEOUT_MS = 10_000;
const CONFIRM_TIMEOUT_MS = 120_000;
const FLUSH_MS = 250;

const events: Omit<EventsMessage, "type"> = { desired: [], results: [], welcomed: [], closed: [], rtt: [], refusals: [] };

function flush(): void {
  if (Object.values(events).every((list: unknown[]) => list.length === 0)) return;
  process.send?.({ type: "events", ...events } satisfies EventsMessage);
  for (const list of Object.values(events) as unknown[][]) list.length = 0;
}

function sourceAddress(index: number, perAddress: number): string {
  const slot = Math.floor(index / perAddress);
  return `127.2.${Math.floor(slot / 250)}.${(slot % 250) + 1}`;
}

class SimAgent {
  private socket: WebSocket | undefined;
  private welcomed = false;
  private stopped = false;
  private attempt = 0;
  private sequence = 0;
  private appliedSerial = 0;
  private currentSystem = "";
  private lastResult: ActivationResult | undefined;
  private latest: DesiredSystem | undefined;
  private draining = false;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  /** Sequence → send time; kept past the real agent's timeout so that slow answers are still measured. */
  private readonly pending = new Map<number, { sentAt: number; settle?: (answered: boolean) => void }>();

  constructor(
    private readonly spec: SimAgentSpec,
    private readonly config: StartMessage,
  ) {}

  /** Opens the link; `onFirstOutcome` runs once it was welcomed or failed (then it retries by itself). */
  connect(onFirstOutcome?: () => void): void {
    if (this.stopped) return;
    const socket = new WebSocket(this.spec.url ?? this.config.url, {
      maxPayload: MAX_FRAME_BYTES,
      perMessageDeflate: false,
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      localAddress: sourceAddress(this.spec.index, this.config.agentsPerAddress),
    });
    this.socket = socket;
    let settled = false;
    const settle = (): void => {
      if (settled) return;
      settled = true;
      onFirstOutcome?.();
    };
    socket.on("unexpected-response", (_request, response) => {
      response.resume();
      socket.terminate();
    });
    socket.on("open", () => this.send({ $case: "hello", value: this.hello() }, true));
    socket.on("message", (data, isBinary) => {
      if (!isBinary) return;
      const { body } = decodeControllerFrame(data as Buffer);
      switch (body.$case) {
        case "welcome":
          this.welcomed = true;
          this.attempt = 0;
          events.welcomed.push([this.spec.index, Date.now()] satisfies AtTuple);
          settle();
          this.heartbeatTimer = setInterval(() => void this.roundTrip(), this.config.heartbeatMs);
          // As the real agent's reconciler: the last result again, in case the link dropped before it arrived.
          if (this.lastResult) this.sendResult({ ...this.lastResult, currentSystem: this.currentSystem });
          return;
        case "heartbeatAck": {
          const entry = this.pending.get(body.value.sequence);
          if (!entry) return;
          this.pending.delete(body.value.sequence);
          events.rtt.push([Date.now(), performance.now() - entry.sentAt] satisfies RttTuple);
          entry.settle?.(true);
          return;
        }
        case "desired":
          return this.onDesired(body.value);
        case "refusal":
          events.refusals.push([this.spec.index, body.value.code, body.value.fatal ? 1 : 0] satisfies RefusalTuple);
          return;
        case "dryActivate":
          return;
      }
    });
    socket.on("error", () => undefined);
    socket.on("close", () => {
      settle();
      const wasWelcomed = this.welcomed;
      this.welcomed = false;
      clearInterval(this.heartbeatTimer);
      for (const entry of this.pending.values()) entry.settle?.(false);
      this.pending.clear();
      if (wasWelcomed) events.closed.push([this.spec.index, Date.now()] satisfies AtTuple);
      this.scheduleReconnect();
    });
  }

  /** Drops the link as a flaky network would; the close handler reconnects. */
  drop(): void {
    this.socket?.terminate();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.heartbeatTimer);
    this.socket?.terminate();
  }

  private hello() {
    return {
      hostName: this.spec.name,
      token: this.spec.token,
      currentSystem: this.currentSystem,
      agentVersion: "bench-sim",
      appliedSerial: this.appliedSerial,
      phase: this.lastResult?.phase ?? HostPhase.HOST_PHASE_UNSPECIFIED,
    };
  }

  private send(body: AgentBody, beforeWelcome = false): boolean {
    if ((!this.welcomed && !beforeWelcome) || this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(encodeAgentFrame(body), { binary: true });
    return true;
  }

  private roundTrip(): Promise<boolean> {
    const sequence = ++this.sequence;
    return new Promise((settle) => {
      this.pending.set(sequence, { sentAt: performance.now(), settle });
      if (!this.send({ $case: "heartbeat", value: { sequence, sentAtMs: Date.now(), currentSystem: this.currentSystem, phase: 0 } })) {
        this.pending.delete(sequence);
        settle(false);
      }
    });
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    this.attempt += 1;
    const ceiling = Math.min(this.config.reconnectMaxDelayMs, RECONNECT_MIN_DELAY_MS * 2 ** Math.min(this.attempt, 16));
    const delay = Math.max(RECONNECT_MIN_DELAY_MS / 2, Math.random() * ceiling);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  private onDesired(desired: DesiredSystem): void {
    const fresh = desired.serial > this.appliedSerial;
    events.desired.push([this.spec.index, Date.now(), desired.serial, desired.activate ? 1 : 0, desired.rolloutId, fresh ? 1 : 0] satisfies DesiredTuple);
    if (this.latest && desired.serial < this.latest.serial) return;
    this.latest = desired;
    if (!this.draining) {
      this.draining = true;
      void this.drain().finally(() => (this.draining = false));
    }
  }

  /** One desired system at a time, the latest first, as the reconciler does. */
  private async drain(): Promise<void> {
    for (;;) {
      const desired = this.latest;
      if (!desired || desired.serial <= this.appliedSerial) return;
      await this.apply(desired);
    }
  }

  private progress(serial: number, phase: HostPhase, message: string): void {
    this.send({ $case: "progress", value: { hostName: this.spec.name, serial, phase, message, bytesDone: 0, bytesTotal: 0 } });
  }

  private async apply(desired: DesiredSystem): Promise<void> {
    const { serial, storePath } = desired;
    if (storePath === "") {
      this.appliedSerial = serial;
      return;
    }
    if (!desired.activate) {
      this.progress(serial, HostPhase.HOST_PHASE_FETCHING, `prefetching ${storePath}`);
      return this.finish(desired, HostPhase.HOST_PHASE_FETCHED);
    }
    this.progress(serial, HostPhase.HOST_PHASE_FETCHING, `fetching ${storePath}`);
    this.progress(serial, HostPhase.HOST_PHASE_ACTIVATING, `switch: switching to ${storePath}`);
    this.progress(serial, HostPhase.HOST_PHASE_CONFIRMING, `confirming until ${new Date(Date.now() + CONFIRM_TIMEOUT_MS).toISOString()}`);
    // Confirmation needs one answered heartbeat; a dropped link is waited out, as the real agent does until its deadline.
    const deadline = Date.now() + CONFIRM_TIMEOUT_MS;
    while (!(await this.roundTrip())) {
      if (Date.now() > deadline) return this.finish(desired, HostPhase.HOST_PHASE_ROLLED_BACK);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    this.currentSystem = storePath;
    return this.finish(desired, HostPhase.HOST_PHASE_ACTIVE);
  }

  private finish(desired: DesiredSystem, phase: HostPhase): void {
    const success = phase === HostPhase.HOST_PHASE_ACTIVE || phase === HostPhase.HOST_PHASE_FETCHED;
    const result: ActivationResult = {
      hostName: this.spec.name,
      serial: desired.serial,
      storePath: desired.storePath,
      success,
      phase,
      errorCode: success ? "" : "E_CONFIRM_TIMEOUT",
      errorMessage: "",
      output: "",
      currentSystem: this.currentSystem,
      finishedAtMs: Date.now(),
      checksFailingBeforeAndAfter: [],
      checksRun: 0,
    };
    this.appliedSerial = Math.max(this.appliedSerial, desired.serial);
    this.lastResult = result;
    this.sendResult(result);
  }

  private sendResult(result: ActivationResult): void {
    if (this.send({ $case: "result", value: result })) events.results.push([this.spec.index, Date.now(), result.serial, result.phase] satisfies ResultTuple);
  }
}

const agents = new Map<number, SimAgent>();

/** First connections, at most `concurrency` handshakes at once. */
function connectAll(config: StartMessage): void {
  let next = 0;
  const launch = (): void => {
    const spec = config.agents[next++];
    if (!spec) return;
    const agent = new SimAgent(spec, config);
    agents.set(spec.index, agent);
    agent.connect(launch);
  };
  for (let i = 0; i < config.connectConcurrency; i++) launch();
}

const flusher = setInterval(flush, FLUSH_MS);
process.on("message", (message: ToWorker) => {
  switch (message.type) {
    case "start":
      connectAll(message);
      return;
    case "drop":
      for (const index of message.indices) agents.get(index)?.drop();
      return;
    case "stop":
      for (const agent of agents.values()) agent.stop();
      clearInterval(flusher);
      flush();
      process.disconnect?.();
      process.exit(0);
  }
});
// The bench went away without saying so: nothing here may outlive it.
process.on("disconnect", () => process.exit(0));
process.send?.({ type: "ready" });
