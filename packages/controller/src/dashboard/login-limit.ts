/**
 * Login attempts per remote address: a fixed number per window. Guessing a
 * 256-bit token is hopeless anyway; this keeps a flood of form posts from
 * costing a token lookup each. The table of addresses is bounded too: when
 * full, it starts afresh (a flood from many addresses is the edge limits'
 * job, connection-governor.ts).
 */
export class LoginLimit {
  private readonly attempts = new Map<string, { windowStartMs: number; count: number }>();

  constructor(
    private readonly perWindow = 10,
    private readonly windowMs = 60_000,
    private readonly maxAddresses = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts an attempt; false when the address has used up its window. */
  admit(address: string): boolean {
    const at = this.now();
    let entry = this.attempts.get(address);
    if (!entry || at - entry.windowStartMs >= this.windowMs) {
      if (!entry && this.attempts.size >= this.maxAddresses) this.attempts.clear();
      entry = { windowStartMs: at, count: 0 };
      this.attempts.set(address, entry);
    }
    entry.count += 1;
    return entry.count <= this.perWindow;
  }

  /** Seconds until the address may try again, for Retry-After. */
  retryAfterSeconds(address: string): number {
    const entry = this.attempts.get(address);
    return entry ? Math.max(1, Math.ceil((entry.windowStartMs + this.windowMs - this.now()) / 1000)) : 1;
  }
}
