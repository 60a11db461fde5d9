import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer } from "ws";
import type { Logger } from "@ferry/core";
import { MAX_FRAME_BYTES } from "@ferry/protocol";
import type { HostRecord, StateStore } from "../store/state-store.js";
import { AgentSession } from "./agent-session.js";

export interface AgentHubOptions {
  store: StateStore;
  log: Logger;
  heartbeatIntervalMs: number;
  now?: () => number;
  onHostChanged: (hostName: string) => void;
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

  constructor(private readonly options: AgentHubOptions) {}

  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.server.handleUpgrade(request, socket, head, (ws) => {
      const remote = `${request.socket.remoteAddress ?? "?"}:${request.socket.remotePort ?? "?"}`;
      new AgentSession(ws, remote, {
        store: this.options.store,
        log: this.options.log,
        heartbeatIntervalMs: this.options.heartbeatIntervalMs,
        now: this.options.now ?? Date.now,
        onHostChanged: this.options.onHostChanged,
        onAuthenticated: (session) => {
          const name = session.hostName as string;
          this.sessions.get(name)?.close("E_SUPERSEDED", "a newer connection for this host took over");
          this.sessions.set(name, session);
        },
        onClosed: (session) => {
          if (session.hostName !== undefined && this.sessions.get(session.hostName) === session) {
            this.sessions.delete(session.hostName);
            this.options.log.info({ host: session.hostName }, "agent disconnected");
            this.options.onHostChanged(session.hostName);
          }
        },
      });
    });
  }

  isOnline(hostName: string): boolean {
    return this.sessions.has(hostName);
  }

  pushDesired(host: HostRecord): void {
    this.sessions.get(host.name)?.sendDesired(host);
  }

  disconnect(hostName: string, message: string): void {
    this.sessions.get(hostName)?.refuse("E_UNKNOWN_HOST", message);
  }

  close(): void {
    for (const client of this.server.clients) client.terminate();
    this.server.close();
  }
}
