import { randomBytes } from "node:crypto";
import type { WebSocket } from "ws";
import { FerryError, assertHostName, assertStorePath, formatPhase, isStorePath, hashToken, tokenMatchesHash, type ErrorCode, type Logger } from "@ferry/core";
import {
  FrameError,
  HostPhase,
  decodeAgentFrame,
  encodeControllerFrame,
  type ActivationResult,
  type AgentBody,
  type ControllerBody,
  type DryActivateOutcome,
  type Heartbeat,
  type Hello,
  type Progress,
} from "@ferry/protocol";
import type { HostRecord, StateStore } from "../store/state-store.js";
import type { LinkLog } from "./link-log.js";
import type { HostLogs } from "./host-logs.js";
import type { ReportWriter } from "./report-writer.js";
import type { AgentLinkMetrics } from "../metrics/registry.js";
import { AGENT_TEXT_LIMITS, FrameRateLimiter, capOutput, capText, type FrameRate } from "./agent-limits.js";

/** WebSocket close codes in the private range, one per refusal family. */
const CLOSE_CODES: Partial<Record<ErrorCode, number>> = {
  E_AUTH: 4001,
  E_UNKNOWN_HOST: 4001,
  E_BAD_HOST_NAME: 4001,
  E_PROTOCOL_VERSION: 4002,
  E_MALFORMED_FRAME: 4003,
  E_BAD_STORE_PATH: 4003,
  E_FORBIDDEN_HOST: 4004,
  E_SUPERSEDED: 4005,
  E_HELLO_TIMEOUT: 4006,
  E_RATE_LIMITED: 4007,
};

/** What every failed hello is told, whatever failed. */
const AUTH_REFUSAL = "unknown host or wrong token";
/** Compared against when the host does not exist, so both refusals cost the same. */
const UNKNOWN_HOST_TOKEN_HASH = hashToken(randomBytes(32).toString("hex"));
/** Keys the controller's own log line sets, which an agent's fields must not replace. */
const RESERVED_FIELDS = new Set(["level", "time", "msg", "pid", "hostname", "component", "host", "serial", "rolloutId", "agentLevel"]);

/** The structured fields of a forwarded agent log line; whatever does not parse as a JSON object is dropped. */
function agentFields(json: string): Record<string, unknown> {
  if (json === "" || json.length > 64 * 1024) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return {};
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return {};
  return Object.fromEntries(Object.entries(parsed).filter(([key]) => !RESERVED_FIELDS.has(key)));
}

export interface SessionHooks {
  /** Read here; reports are written through `reports`. */
  store: Pick<StateStore, "getHost" | "raiseSerialFloor">;
  reports: ReportWriter;
  links: LinkLog;
  log: Logger;
  heartbeatIntervalMs: number;
  now: () => number;
  /** Called once the agent proved who it is; returns false to refuse. */
  onAuthenticated: (session: AgentSession) => void;
  onClosed: (session: AgentSession) => void;
  onHostChanged: (hostName: string) => void;
  onDryActivateOutcome: (outcome: DryActivateOutcome) => void;
  frameRate: FrameRate;
  metrics?: AgentLinkMetrics | undefined;
  /** Holds forwarded log lines for ferry logs. */
  logs?: Pick<HostLogs, "add"> | undefined;
}

/**
 * One agent connection. Frames are handled strictly in order, one at a time,
 * so that a result can never overtake the progress report sent before it;
 * only a heartbeat's answer goes out as soon as the frame arrives.
 */
export class AgentSession {
  hostName: string | undefined;
  /** What the agent last said it runs, so that a heartbeat saying the same writes nothing. */
  private knownSystem = "";
  /**
   * The serial and deployment this host was last told to run. Every new
   * desired system reaches the connected session (the hub pushes each one),
   * so a progress report or a result is matched here without reading the store.
   */
  private desired = { serial: 0, deploymentId: "" };
  /** Until the welcome is sent no other frame may go out; a desired system pushed meanwhile waits here. */
  private welcomed = false;
  private held: HostRecord | undefined;
  private queue: Promise<void> = Promise.resolve();
  private closed = false;
  private lastFrameAt: number;
  private readonly frameLimiter: FrameRateLimiter;
  private readonly helloTimer: NodeJS.Timeout;
  private readonly livenessTimer: NodeJS.Timeout;

  constructor(
    private readonly socket: WebSocket,
    private readonly remote: string,
    private readonly hooks: SessionHooks,
  ) {
    this.lastFrameAt = hooks.now();
    this.frameLimiter = new FrameRateLimiter(hooks.frameRate, hooks.now);
    this.helloTimer = setTimeout(() => this.refuse("E_HELLO_TIMEOUT", "no hello within 10 s"), 10_000);
    // An agent that stops talking is gone even if TCP has not noticed.
    this.livenessTimer = setInterval(() => {
      if (this.hooks.now() - this.lastFrameAt > 3 * this.hooks.heartbeatIntervalMs) {
        this.hooks.log.info({ host: this.hostName, remote }, "agent silent for three heartbeats; dropping");
        this.socket.terminate();
      }
    }, hooks.heartbeatIntervalMs);
    socket.on("message", (data, isBinary) => {
      this.lastFrameAt = this.hooks.now();
      if (!this.frameLimiter.take()) {
        // Not fatal: a real agent reconnects after its back-off, a flood is cut every time.
        this.refuse("E_RATE_LIMITED", `more than ${hooks.frameRate.perSecond} frames/s (burst ${hooks.frameRate.burst})`, false);
        this.socket.terminate();
        return;
      }
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      let body: AgentBody | undefined;
      let malformed: unknown;
      try {
        body = this.decode(bytes, isBinary);
      } catch (error) {
        malformed = error;
      }
      // Answered on arrival: the agent's confirmation after a switch waits on this answer, and
      // behind the durable writes of the progress reports queued before it, it came hundreds
      // of milliseconds late under a rollout wave. Its write, if any, still goes in order.
      const answered = body?.$case === "heartbeat" && this.welcomed && !this.closed && this.acknowledge(body.value);
      this.queue = this.queue
        .then(() => (body === undefined ? Promise.reject(malformed) : this.onFrame(body, answered)))
        .catch((error: unknown) => this.fail(error));
    });
    socket.on("close", () => this.onClose());
    socket.on("error", (error) => hooks.log.warn({ host: this.hostName, remote, err: error.message }, "agent socket error"));
  }

  send(body: ControllerBody): void {
    if (this.closed) return;
    this.hooks.metrics?.frameOut(body.$case);
    this.socket.send(encodeControllerFrame(body), { binary: true });
  }

  /** The serial of the desired system last sent (or held for the welcome); 0 before any. */
  get desiredSerial(): number {
    return this.desired.serial;
  }

  sendDesired(host: HostRecord): void {
    // Assignments push in slices, so an older one can arrive after a newer one; the agent keeps the newest.
    if (host.desiredSerial < this.desired.serial) return;
    this.desired = { serial: host.desiredSerial, deploymentId: host.deploymentId };
    if (!this.welcomed) {
      // Pushed while the hello is still being answered: sent right after the welcome.
      this.held = host;
      return;
    }
    this.send({
      $case: "desired",
      value: {
        hostName: host.name,
        storePath: host.desiredSystem,
        serial: host.desiredSerial,
        deploymentId: host.deploymentId,
        rolloutId: host.rolloutId,
        mode: host.activationMode,
        activate: host.desiredActivate,
        intent: host.desiredIntent,
      },
    });
  }

  /** Tells the agent why, then closes; `fatal` says whether retrying can help. */
  refuse(code: ErrorCode, message: string, fatal = true): void {
    if (this.closed) return;
    this.hooks.log.warn({ host: this.hostName, remote: this.remote, code, reason: message }, "agent refused");
    this.hooks.metrics?.agentRefused(code);
    this.send({ $case: "refusal", value: { code, message, fatal } });
    this.socket.close(CLOSE_CODES[code] ?? 4000, code);
    this.closed = true;
  }

  private fail(error: unknown): void {
    if (error instanceof FrameError) return this.refuse(error.code, error.message);
    if (error instanceof FerryError) return this.refuse(error.code, error.message);
    this.hooks.log.error({ host: this.hostName, err: error instanceof Error ? error.stack : String(error) }, "agent frame handling failed");
    this.refuse("E_INTERNAL", "internal error", false);
  }

  private decode(bytes: Buffer, isBinary: boolean): AgentBody {
    if (!isBinary) throw new FrameError("E_MALFORMED_FRAME", "text frames are not part of the protocol");
    const { body } = decodeAgentFrame(bytes);
    this.hooks.metrics?.frameIn(body.$case);
    return body;
  }

  /** Returns whether the heartbeat was answered; one naming a bad store path is refused in order by the queue. */
  private acknowledge(heartbeat: Heartbeat): boolean {
    if (heartbeat.currentSystem !== "" && !isStorePath(heartbeat.currentSystem)) return false;
    this.send({ $case: "heartbeatAck", value: { sequence: heartbeat.sequence, serverTimeMs: this.hooks.now() } });
    return true;
  }

  /** `answered`: a heartbeat already acknowledged on arrival. */
  private async onFrame(body: AgentBody, answered: boolean): Promise<void> {
    if (this.closed) return;
    if (this.hostName === undefined) {
      if (body.$case !== "hello") throw new FerryError("E_AUTH", `expected hello, got ${body.$case}`);
      return this.onHello(body.value);
    }
    await this.onAuthenticatedFrame(this.hostName, body, answered);
  }

  private async onHello(hello: Hello): Promise<void> {
    const name = assertHostName(hello.hostName);
    const host = await this.hooks.store.getHost(name);
    // An unknown name and a wrong token get the same answer, after the same work,
    // so a client cannot probe which host names exist; the log keeps the difference.
    const tokenMatches = tokenMatchesHash(hello.token, host?.tokenHash ?? UNKNOWN_HOST_TOKEN_HASH);
    if (!host || !tokenMatches) {
      this.hooks.log.warn({ host: name, remote: this.remote, reason: host ? "wrong token" : "unknown host" }, "agent authentication failed");
      throw new FerryError("E_AUTH", AUTH_REFUSAL);
    }
    if (hello.currentSystem !== "") assertStorePath(hello.currentSystem);
    clearTimeout(this.helloTimer);
    this.hostName = name;
    if (hello.appliedSerial > host.desiredSerial) {
      // The agent remembers more than this controller (restored from an old backup, or rebuilt):
      // number the next deployment above what the agent has seen, or it would be ignored.
      this.hooks.log.warn(
        { host: name, agentSerial: hello.appliedSerial, controllerSerial: host.desiredSerial },
        "agent is ahead of the controller; raising the host's serial",
      );
      await this.hooks.store.raiseSerialFloor(name, hello.appliedSerial);
    }
    // Registered before anything is awaited: from here on every new desired system reaches this
    // session (held until the welcome). Registered after the read below, a deploy committed in
    // between was pushed to no one and never sent.
    this.hooks.onAuthenticated(this);
    const caughtUp = hello.appliedSerial >= host.desiredSerial && hello.appliedSerial > 0;
    await this.hooks.reports.write(name, {
      currentSystem: hello.currentSystem,
      agentVersion: hello.agentVersion.slice(0, AGENT_TEXT_LIMITS.agentVersion),
      lastSeenMs: this.hooks.now(),
      ...(caughtUp && hello.phase !== HostPhase.HOST_PHASE_UNSPECIFIED ? { phase: hello.phase } : {}),
    });
    this.knownSystem = hello.currentSystem;
    const updated = await this.hooks.store.getHost(name);
    // Removed while it said hello.
    if (!updated) throw new FerryError("E_AUTH", AUTH_REFUSAL);
    this.hooks.links.connect({ host: name, remote: this.remote, currentSystem: hello.currentSystem, appliedSerial: hello.appliedSerial });
    this.send({ $case: "welcome", value: { hostName: name, heartbeatIntervalMs: this.hooks.heartbeatIntervalMs, serverTimeMs: this.hooks.now() } });
    this.welcomed = true;
    const latest = this.held && this.held.desiredSerial > updated.desiredSerial ? this.held : updated;
    this.held = undefined;
    this.desired = { serial: latest.desiredSerial, deploymentId: latest.deploymentId };
    if (latest.desiredSerial > 0) this.sendDesired(latest);
    this.hooks.onHostChanged(name);
  }

  private async onAuthenticatedFrame(hostName: string, body: AgentBody, answered: boolean): Promise<void> {
    switch (body.$case) {
      case "hello":
        throw new FrameError("E_MALFORMED_FRAME", "hello sent twice");
      case "heartbeat": {
        if (body.value.currentSystem !== "") assertStorePath(body.value.currentSystem);
        const now = this.hooks.now();
        if (!answered) this.send({ $case: "heartbeatAck", value: { sequence: body.value.sequence, serverTimeMs: now } });
        const { currentSystem } = body.value;
        if (currentSystem !== "" && currentSystem !== this.knownSystem) {
          // Switched outside Ferry (or by a result this controller missed): that is worth a write.
          this.knownSystem = currentSystem;
          await this.hooks.reports.write(hostName, { lastSeenMs: now, currentSystem });
        } else {
          this.hooks.reports.seen(hostName, now);
        }
        return;
      }
      case "desiredRequest": {
        this.requireOwnHost(hostName, body.value.hostName);
        const host = await this.hooks.store.getHost(hostName);
        if (host && host.desiredSerial > 0) this.sendDesired(host);
        return;
      }
      case "progress":
        this.requireOwnHost(hostName, body.value.hostName);
        return this.onProgress(hostName, body.value);
      case "result":
        this.requireOwnHost(hostName, body.value.hostName);
        return this.onResult(hostName, body.value);
      case "dryActivateOutcome":
        this.requireOwnHost(hostName, body.value.hostName);
        this.hooks.onDryActivateOutcome({ ...body.value, hostName, output: capOutput(body.value.output, AGENT_TEXT_LIMITS.dryActivateOutput) });
        return;
      case "log":
        this.requireOwnHost(hostName, body.value.hostName);
        this.hooks.logs?.add({
          atMs: this.hooks.now(),
          hostName,
          level: capText(body.value.level, 16),
          message: capText(body.value.message, AGENT_TEXT_LIMITS.logMessage),
          serial: body.value.serial,
          rolloutId: capText(body.value.rolloutId, 64),
          fieldsJson: body.value.fieldsJson,
        });
        this.hooks.log.info(
          {
            ...agentFields(body.value.fieldsJson),
            host: hostName,
            serial: body.value.serial,
            rolloutId: body.value.rolloutId || undefined,
            agentLevel: body.value.level,
          },
          capText(body.value.message, AGENT_TEXT_LIMITS.logMessage),
        );
        return;
    }
  }

  /** An agent configured before names were canonical may write its name as `Web-2`; it is still `web-2`. */
  private requireOwnHost(authenticated: string, claimed: string): void {
    let canonical: string | undefined;
    try {
      canonical = assertHostName(claimed);
    } catch {
      canonical = undefined;
    }
    if (canonical !== authenticated) {
      throw new FerryError("E_FORBIDDEN_HOST", `host ${authenticated} may not speak for ${JSON.stringify(claimed.slice(0, 253))}`);
    }
  }

  private async onProgress(hostName: string, progress: Progress): Promise<void> {
    const host = this.desired;
    if (progress.serial !== host.serial) return;
    await this.hooks.reports.write(hostName, { phase: progress.phase, lastSeenMs: this.hooks.now() });
    // Results are logged at info, one per host and deployment; the steps before them would be several.
    this.hooks.log.debug(
      { host: hostName, serial: progress.serial, deploymentId: host.deploymentId, phase: formatPhase(progress.phase) },
      capText(progress.message, AGENT_TEXT_LIMITS.progressMessage) || "progress",
    );
    this.hooks.onHostChanged(hostName);
  }

  private async onResult(hostName: string, result: ActivationResult): Promise<void> {
    if (result.currentSystem !== "") assertStorePath(result.currentSystem);
    const host = this.desired;
    this.hooks.metrics?.agentResult(hostName, result.serial, result.phase);
    const fields = { currentSystem: result.currentSystem, lastSeenMs: this.hooks.now() };
    // Bounded: the names come from the agent.
    const stillFailing = result.checksFailingBeforeAndAfter.slice(0, 64).map((name) => name.slice(0, 512));
    const event = {
      atMs: this.hooks.now(),
      kind: result.success ? "activation-succeeded" : "activation-failed",
      data: {
        serial: result.serial,
        storePath: result.storePath,
        // Tells history a rollback (rolled-back) from a failure that left the host as it was.
        phase: formatPhase(result.phase),
        errorCode: capText(result.errorCode, AGENT_TEXT_LIMITS.errorCode),
        errorMessage: capText(result.errorMessage, AGENT_TEXT_LIMITS.errorMessage),
        ...(stillFailing.length > 0 ? { checksFailingBeforeAndAfter: stillFailing } : {}),
      },
    };
    if (result.currentSystem !== "") this.knownSystem = result.currentSystem;
    if (result.serial !== host.serial) {
      // A late answer to an older deployment: it tells us what runs, nothing more.
      await this.hooks.reports.write(hostName, fields, event);
    } else {
      await this.hooks.reports.write(
        hostName,
        {
          ...fields,
          phase: result.phase,
          appliedSerial: result.serial,
          lastErrorCode: capText(result.errorCode, AGENT_TEXT_LIMITS.errorCode),
          lastErrorMessage: capText(result.errorMessage, AGENT_TEXT_LIMITS.errorMessage),
          lastErrorOutput: capOutput(result.output, AGENT_TEXT_LIMITS.output),
          checksFailingBeforeAndAfter: stillFailing,
          checksRun: result.checksRun,
        },
        event,
      );
    }
    const logged = {
      host: hostName,
      serial: result.serial,
      deploymentId: host.deploymentId,
      success: result.success,
      code: capText(result.errorCode, AGENT_TEXT_LIMITS.errorCode) || undefined,
    };
    if (result.success && stillFailing.length > 0) {
      this.hooks.log.warn(
        { ...logged, checksFailingBeforeAndAfter: stillFailing, checksRun: result.checksRun },
        `host activated its desired system; checks failing before and after the switch: ${stillFailing.join(", ")}`,
      );
    } else {
      this.hooks.log.info(
        logged,
        result.success ? "host activated its desired system" : `host failed: ${capText(result.errorMessage, AGENT_TEXT_LIMITS.errorMessage)}`,
      );
    }
    this.hooks.onHostChanged(hostName);
  }

  private onClose(): void {
    this.closed = true;
    clearTimeout(this.helloTimer);
    clearInterval(this.livenessTimer);
    this.hooks.onClosed(this);
  }

  close(code: ErrorCode, message: string): void {
    this.refuse(code, message, false);
  }
}
