import type { Server, ServerOptions } from "node:http";
import type { Server as HttpsServer } from "node:https";
import type { Socket } from "node:net";
import type { Logger } from "@ferry/core";

/**
 * Limits for the controller's HTTP listener, which faces every host and
 * anyone else who can reach the port. The defaults hold a fleet behind NAT
 * (many hosts, one address, each fetching with several connections) while a
 * single address opening sockets and never speaking cannot exhaust file
 * descriptors.
 */
export interface EdgeLimits {
  /** Sockets that have not proved who they are (no token yet), across all addresses. */
  maxPendingConnections: number;
  /** The same, from one remote address. */
  maxPendingPerAddress: number;
  /** Time a client has to send complete request headers. */
  headersTimeoutMs: number;
  /** A socket with no traffic at all for this long is closed (uploads that progress are not). */
  idleTimeoutMs: number;
  /** Authenticated uploads (cache PUTs, bundles) in progress at once; more get 503. */
  maxConcurrentUploads: number;
}

export const DEFAULT_EDGE_LIMITS: EdgeLimits = {
  maxPendingConnections: 4096,
  maxPendingPerAddress: 512,
  headersTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  maxConcurrentUploads: 64,
};

/** How often refused connections are summarised in the log, instead of one line each. */
const REFUSAL_SUMMARY_MS = 10_000;

/**
 * Counts sockets per remote address until they authenticate. An agent whose
 * hello succeeded, or a request that carried a valid token, is trusted and no
 * longer counts; everything else (cache readers, probes, attackers) shares the
 * pending budget.
 */
export class ConnectionGovernor {
  /**
   * Keyed by the remote address and port: behind TLS, the socket a request
   * arrives on wraps the TCP socket admitted here, and both share that key.
   */
  private readonly pending = new Map<string, Socket>();
  private readonly perAddress = new Map<string, number>();
  private uploads = 0;
  private refused = 0;
  private summaryTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly limits: EdgeLimits,
    private readonly log: Logger,
  ) {}

  /** Options for `http.createServer`: timeouts that Node only takes at creation. */
  serverOptions(): ServerOptions {
    return {
      headersTimeout: this.limits.headersTimeoutMs,
      // Node checks headersTimeout on this interval; keep it well below the timeout.
      connectionsCheckingInterval: Math.min(1000, this.limits.headersTimeoutMs),
      // requestTimeout bounds a whole request; uploads over slow site links may
      // take hours while progressing, so only inactivity is bounded (below).
      requestTimeout: 0,
    };
  }

  attach(server: Server | HttpsServer): void {
    server.timeout = this.limits.idleTimeoutMs;
    server.on("connection", (socket: Socket) => this.admit(socket));
  }

  private admit(socket: Socket): void {
    const address = socket.remoteAddress ?? "?";
    const fromAddress = this.perAddress.get(address) ?? 0;
    if (this.pending.size >= this.limits.maxPendingConnections || fromAddress >= this.limits.maxPendingPerAddress) {
      this.noteRefusal(address);
      socket.destroy();
      return;
    }
    const key = peerKey(socket);
    this.pending.set(key, socket);
    this.perAddress.set(address, fromAddress + 1);
    socket.once("close", () => this.release(key, socket, address));
  }

  /** The socket proved who it is: it no longer counts against the unauthenticated budget. */
  trust(socket: Socket): void {
    const key = peerKey(socket);
    const admitted = this.pending.get(key);
    if (admitted) this.release(key, admitted, socket.remoteAddress ?? "?");
  }

  private release(key: string, socket: Socket, address: string): void {
    if (this.pending.get(key) !== socket) return;
    this.pending.delete(key);
    const left = (this.perAddress.get(address) ?? 1) - 1;
    if (left <= 0) this.perAddress.delete(address);
    else this.perAddress.set(address, left);
  }

  /** Takes an upload slot, or returns false when every slot is busy. */
  beginUpload(): boolean {
    if (this.uploads >= this.limits.maxConcurrentUploads) return false;
    this.uploads++;
    return true;
  }

  endUpload(): void {
    this.uploads = Math.max(0, this.uploads - 1);
  }

  get pendingConnections(): number {
    return this.pending.size;
  }

  private noteRefusal(address: string): void {
    this.refused++;
    if (this.summaryTimer) return;
    this.log.warn({ remote: address, pending: this.pending.size, limits: this.limits }, "connection refused: unauthenticated connection limit reached");
    this.summaryTimer = setTimeout(() => {
      this.summaryTimer = undefined;
      if (this.refused > 1) this.log.warn({ refused: this.refused, windowMs: REFUSAL_SUMMARY_MS }, "connections refused at the limit");
      this.refused = 0;
    }, REFUSAL_SUMMARY_MS);
    this.summaryTimer.unref();
  }

  close(): void {
    if (this.summaryTimer) clearTimeout(this.summaryTimer);
  }
}

function peerKey(socket: Socket): string {
  return `${socket.remoteAddress ?? "?"}|${socket.remotePort ?? "?"}`;
}
