import type { EventEmitter } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";
import { assertHostName } from "@ferry/core";
import { SECURITY_HEADERS } from "./respond.js";

export interface LiveLimits {
  /** Event streams open at once, across all sessions; more are refused with 503. */
  maxClients: number;
  /** At most one message per stream this often: a wave of 500 hosts reporting makes one page refresh, not 500. */
  coalesceMs: number;
  /** A comment line this often keeps the listener's idle timeout and proxies from closing a quiet stream. */
  keepAliveMs: number;
}

export const DEFAULT_LIVE_LIMITS: LiveLimits = { maxClients: 256, coalesceMs: 500, keepAliveMs: 20_000 };

/** Bytes a stream may have waiting for a client that does not read; past this it is closed. */
const MAX_BUFFERED = 64 * 1024;

/** What a page follows: every host, one host, every rollout, one rollout. */
export type Topic = { kind: "fleet" } | { kind: "host"; name: string } | { kind: "rollouts" } | { kind: "rollout"; id: string };

const ROLLOUT_ID = /^[A-Za-z0-9._-]{1,100}$/;

/** The topic a page asked for; undefined for anything else. */
export function parseTopic(text: string): Topic | undefined {
  if (text === "fleet") return { kind: "fleet" };
  if (text === "rollouts") return { kind: "rollouts" };
  if (text.startsWith("rollout:") && ROLLOUT_ID.test(text.slice(8))) return { kind: "rollout", id: text.slice(8) };
  if (text.startsWith("host:")) {
    try {
      return { kind: "host", name: assertHostName(text.slice(5)) };
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/**
 * Server-Sent Events for open dashboard pages. Each stream listens on the
 * change emitter its topic needs and says "changed" (nothing more: the page
 * fetches what it shows, with its own session's rights); every listener and
 * timer goes when the page closes its stream.
 */
export class LiveUpdates {
  private open = 0;

  constructor(
    private readonly hostEvents: EventEmitter,
    private readonly rolloutEvents: EventEmitter,
    private readonly limits: LiveLimits = DEFAULT_LIVE_LIMITS,
    private readonly now: () => number = Date.now,
  ) {}

  /** Streams open now. */
  get clients(): number {
    return this.open;
  }

  /** Takes the request over as an event stream; false (nothing written) when at the limit. */
  serve(request: IncomingMessage, response: ServerResponse, topic: Topic): boolean {
    if (this.open >= this.limits.maxClients) return false;
    this.open++;
    const emitter = topic.kind === "fleet" || topic.kind === "host" ? this.hostEvents : this.rolloutEvents;
    let lastSentMs = 0;
    let pending: NodeJS.Timeout | undefined;
    const send = (text: string): void => {
      if (response.writableLength > MAX_BUFFERED) {
        response.destroy();
        return;
      }
      response.write(text);
    };
    const onChanged = (subject: string): void => {
      if (topic.kind === "host" && subject !== topic.name) return;
      if (topic.kind === "rollout" && subject !== topic.id) return;
      if (pending) return;
      pending = setTimeout(
        () => {
          pending = undefined;
          lastSentMs = this.now();
          send("event: changed\ndata: \n\n");
        },
        Math.max(0, lastSentMs + this.limits.coalesceMs - this.now()),
      );
    };
    const keepAlive = setInterval(() => send(": keep-alive\n\n"), this.limits.keepAliveMs);
    emitter.on("changed", onChanged);
    let closed = false;
    const close = (): void => {
      if (closed) return;
      closed = true;
      emitter.off("changed", onChanged);
      clearTimeout(pending);
      clearInterval(keepAlive);
      this.open--;
    };
    response.once("close", close);
    request.socket.setNoDelay(true);
    response.writeHead(200, {
      ...SECURITY_HEADERS,
      "content-type": "text/event-stream; charset=utf-8",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    // How long a browser waits before reconnecting after the stream broke.
    response.write("retry: 3000\n\n");
    return true;
  }
}
