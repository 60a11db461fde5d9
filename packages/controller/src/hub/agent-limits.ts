/**
 * What one agent connection may send. A host is trusted to report on itself,
 * not to fill the controller's disk or log: every string it supplies is cut to
 * a bound before it is stored or logged, and its frames are rate-limited.
 */
export const AGENT_TEXT_LIMITS = {
  errorCode: 64,
  errorMessage: 4096,
  progressMessage: 1024,
  logMessage: 4096,
  output: 16384,
  agentVersion: 64,
  dryActivateOutput: 256 * 1024,
} as const;

/** Keeps the head of a message (where the reason is) and marks the cut. */
export function capText(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…[${text.length - max} chars cut]`;
}

/** Keeps the tail of command output (where the error is) and marks the cut. */
export function capOutput(text: string, max: number): string {
  return text.length <= max ? text : `[${text.length - max} chars cut]…${text.slice(-max)}`;
}

export interface FrameRate {
  /** Frames accepted at once after a quiet spell. */
  burst: number;
  /** Sustained frames per second. */
  perSecond: number;
}

/**
 * Generous for a real agent (a heartbeat every few seconds, a few dozen
 * progress and log frames per deployment), tight for a flood.
 */
export const DEFAULT_FRAME_RATE: FrameRate = { burst: 200, perSecond: 20 };

/** A token bucket over one connection's frames. */
export class FrameRateLimiter {
  private tokens: number;
  private updatedAt: number;

  constructor(
    private readonly rate: FrameRate,
    private readonly now: () => number,
  ) {
    this.tokens = rate.burst;
    this.updatedAt = now();
  }

  /** Takes one frame's token; false when the connection is over its rate. */
  take(): boolean {
    const now = this.now();
    this.tokens = Math.min(this.rate.burst, this.tokens + ((now - this.updatedAt) / 1000) * this.rate.perSecond);
    this.updatedAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
