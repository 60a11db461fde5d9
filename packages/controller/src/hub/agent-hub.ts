import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer } from "ws";
import { randomBytes } from "node:crypto";
import { FerryError, type Logger } from "@ferry/core";
import { MAX_FRAME_BYTES, type DryActivateOutcome, type SignedIntent } from "@ferry/protocol";
import type { HostRecord, StateStore } from "../store/state-store.js";
import { AgentSession } from "./agent-session.js";
import { DEFAULT_FRAME_RATE, type FrameRate } from "./agent-limits.js";
import { LinkLog } from "./link-log.js";
import type { HostLogs } from "./host-logs.js";
import { ReportWriter } from "./report-writer.js";
import type { AgentLinkMetrics } from "../metrics/registry.js";

export interface AgentHubOptions {
  store: StateStore;
  log: Logger;
  heartbeatIntervalMs: number;
  now?: () => number;
  onHostChanged: (hostName: string) => void;
  frameRate?: FrameRate;
  metrics?: AgentLinkMetrics;
  /** Where forwarded log lines are held for ferry logs. */
  logs?: HostLogs;
}

/** Accepts agent connections and keeps one live session per host. */
export class AgentHub {
  private readonly server = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_FRAME_BYTES,
    // Compression buys little on small protobuf frames and costs memory per socket.
    perMessageDeflate: false,
  });
  private readonly sessions = new Map<string, AgentSession>();
  private readonly dryRuns = new Map<string, { hostName: string; settle: (outcome: DryActivateOutcome | FerryError) => void }>();
  private readonly reports: ReportWriter;
  private readonly links: LinkLog;
  /** Set by close(): the links it cuts are not news to anyone. */
  private closing = false;

  constructor(private readonly options: AgentHubOptions) {
    this.reports = new ReportWriter(options.store);
    this.links = new LinkLog(options.log, () => this.sessions.size);
  }

  /** `onAuthenticated` runs once the agent's hello proved which host it is. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer, onAuthenticated: () => void = () => undefined): void {
    this.server.handleUpgrade(request, socket, head, (ws) => {
      const remote = `${request.socket.remoteAddress ?? "?"}:${request.socket.remotePort ?? "?"}`;
      new AgentSession(ws, remote, {
        store: this.options.store,
        reports: this.reports,
        links: this.links,
        log: this.options.log,
        heartbeatIntervalMs: this.options.heartbeatIntervalMs,
        now: this.options.now ?? Date.now,
        onHostChanged: this.options.onHostChanged,
        frameRate: this.options.frameRate ?? DEFAULT_FRAME_RATE,
        metrics: this.options.metrics,
        logs: this.options.logs,
        onDryActivateOutcome: (outcome) => {
          const pending = this.dryRuns.get(outcome.requestId);
          if (pending && pending.hostName === outcome.hostName) pending.settle(outcome);
        },
        onAuthenticated: (session) => {
          onAuthenticated();
          this.options.metrics?.agentConnected();
          const name = session.hostName as string;
          this.sessions.get(name)?.close("E_SUPERSEDED", "a newer connection for this host took over");
          this.sessions.set(name, session);
        },
        onClosed: (session) => {
          if (session.hostName !== undefined && this.sessions.get(session.hostName) === session) {
            this.sessions.delete(session.hostName);
            if (this.closing) return;
            for (const pending of [...this.dryRuns.values()].filter((run) => run.hostName === session.hostName)) {
              pending.settle(new FerryError("E_HOST_OFFLINE", `${session.hostName} disconnected before answering`));
            }
            this.links.disconnect({ host: session.hostName });
            this.options.onHostChanged(session.hostName);
          }
        },
      });
    });
  }

  /** Agents of other replicas sharing the database: counted online (and their last-seen time shown) here too. */
  private remote: { isOnline(name: string): boolean; lastSeenMs(name: string): number } | undefined;

  seeOtherReplicas(remote: { isOnline(name: string): boolean; lastSeenMs(name: string): number }): void {
    this.remote = remote;
  }

  isOnline(hostName: string): boolean {
    return this.sessions.has(hostName) || this.remote?.isOnline(hostName) === true;
  }

  /** The host's last sign of life seen by this process (heartbeats are written in batches); 0 if none. */
  lastSeenMs(hostName: string): number {
    return Math.max(this.reports.lastSeenMs(hostName), this.remote?.lastSeenMs(hostName) ?? 0);
  }

  pushDesired(host: HostRecord): void {
    this.options.metrics?.desiredPublished(host);
    this.sessions.get(host.name)?.sendDesired(host);
  }

  /**
   * A desired system another replica recorded: sent only if the host's agent
   * is connected here and has not been sent this serial or a newer one.
   */
  offerDesired(host: HostRecord): void {
    const session = this.sessions.get(host.name);
    if (session && host.desiredSerial > session.desiredSerial) this.pushDesired(host);
  }

  /** Asks a connected agent for its dry-activate output of `storePath`; the intent, when given, is relayed for the host to check. */
  dryActivate(hostName: string, storePath: string, timeoutMs: number, intent?: SignedIntent): Promise<DryActivateOutcome> {
    const session = this.sessions.get(hostName);
    if (!session) {
      const elsewhere = this.remote?.isOnline(hostName) === true ? " to this replica (it is connected to another one; ask that one)" : "";
      return Promise.reject(new FerryError("E_HOST_OFFLINE", `${hostName} is not connected${elsewhere}`));
    }
    const requestId = randomBytes(8).toString("hex");
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => settle(new FerryError("E_COMMAND_TIMEOUT", `${hostName} did not answer within ${Math.round(timeoutMs / 1000)} s`)),
        timeoutMs,
      );
      const settle = (outcome: DryActivateOutcome | FerryError): void => {
        clearTimeout(timer);
        this.dryRuns.delete(requestId);
        if (outcome instanceof FerryError) reject(outcome);
        else resolve(outcome);
      };
      this.dryRuns.set(requestId, { hostName, settle });
      session.send({ $case: "dryActivate", value: { requestId, storePath, intent } });
    });
  }

  disconnect(hostName: string, message: string): void {
    this.sessions.get(hostName)?.refuse("E_UNKNOWN_HOST", message);
  }

  /** Cuts every link and writes what is still in memory; the store stays open. */
  async close(): Promise<void> {
    this.closing = true;
    for (const client of this.server.clients) client.terminate();
    this.server.close();
    this.links.close();
    await this.reports.close();
  }
}
