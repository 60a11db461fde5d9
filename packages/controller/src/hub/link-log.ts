import type { Logger } from "@ferry/core";

/** Per-agent connect and disconnect lines logged at info in each interval; the rest are counted. */
const LINES_PER_INTERVAL = 20;
const INTERVAL_MS = 10_000;

/**
 * Connect and disconnect lines for a fleet: a small fleet sees every agent
 * come and go, a restart of a controller with 50,000 agents writes a few
 * dozen lines and one summary per interval instead of 100,000 (the rest are
 * at debug level).
 */
export class LinkLog {
  private budget = LINES_PER_INTERVAL;
  private connected = 0;
  private disconnected = 0;
  private suppressed = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly log: Logger,
    private readonly online: () => number,
  ) {
    this.timer = setInterval(() => this.summarize(), INTERVAL_MS);
    this.timer.unref();
  }

  connect(fields: Record<string, unknown>): void {
    this.connected += 1;
    this.line(fields, "agent connected");
  }

  disconnect(fields: Record<string, unknown>): void {
    this.disconnected += 1;
    this.line(fields, "agent disconnected");
  }

  private line(fields: Record<string, unknown>, message: string): void {
    if (this.budget > 0) {
      this.budget -= 1;
      this.log.info(fields, message);
    } else {
      this.suppressed += 1;
      this.log.debug(fields, message);
    }
  }

  private summarize(): void {
    if (this.suppressed > 0) {
      this.log.info(
        { online: this.online(), connected: this.connected, disconnected: this.disconnected, notLogged: this.suppressed, intervalMs: INTERVAL_MS },
        "agent links",
      );
    }
    this.budget = LINES_PER_INTERVAL;
    this.connected = 0;
    this.disconnected = 0;
    this.suppressed = 0;
  }

  close(): void {
    clearInterval(this.timer);
  }
}
