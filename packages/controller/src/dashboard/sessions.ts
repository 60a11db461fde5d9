import { randomBytes, timingSafeEqual } from "node:crypto";

/** One logged-in browser: which token it proved (by hash: the secret itself is never kept), and its form token. */
export interface Session {
  id: string;
  tokenHash: string;
  /** Sent back in every form; a POST without it is refused (cross-site request forgery). */
  csrf: string;
  createdAtMs: number;
  lastUsedAtMs: number;
  /** One message for the next page (the outcome of an action). */
  flash: string;
}

export interface SessionLimits {
  /** A session unused this long ends. */
  idleMs: number;
  /** A session ends this long after login, used or not. */
  maxAgeMs: number;
  /** Sessions held at once; the oldest is dropped for a new one. */
  maxSessions: number;
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = { idleMs: 2 * 3_600_000, maxAgeMs: 12 * 3_600_000, maxSessions: 1000 };

const randomId = (): string => randomBytes(32).toString("base64url");

/**
 * Sessions live in memory only: a controller restart logs everyone out,
 * which is the safe direction. The map keeps insertion order, so the first
 * entry is the oldest login when one must make room.
 */
export class SessionStore {
  private readonly sessions = new Map<string, Session>();

  constructor(
    private readonly limits: SessionLimits = DEFAULT_SESSION_LIMITS,
    private readonly now: () => number = Date.now,
  ) {}

  create(tokenHash: string): Session {
    this.sweep();
    while (this.sessions.size >= this.limits.maxSessions) {
      const oldest = this.sessions.keys().next().value as string;
      this.sessions.delete(oldest);
    }
    const at = this.now();
    const session: Session = { id: randomId(), tokenHash, csrf: randomId(), createdAtMs: at, lastUsedAtMs: at, flash: "" };
    this.sessions.set(session.id, session);
    return session;
  }

  /** The live session with this id, touched; undefined for an unknown, forged or expired one. */
  get(id: string): Session | undefined {
    const session = this.sessions.get(id);
    if (!session) return undefined;
    if (this.expired(session)) {
      this.sessions.delete(id);
      return undefined;
    }
    session.lastUsedAtMs = this.now();
    return session;
  }

  end(id: string): void {
    this.sessions.delete(id);
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Seconds a new session's cookie may live, for Max-Age. */
  get cookieMaxAgeSeconds(): number {
    return Math.floor(this.limits.maxAgeMs / 1000);
  }

  private expired(session: Session): boolean {
    const at = this.now();
    return at - session.lastUsedAtMs >= this.limits.idleMs || at - session.createdAtMs >= this.limits.maxAgeMs;
  }

  private sweep(): void {
    for (const [id, session] of this.sessions) if (this.expired(session)) this.sessions.delete(id);
  }
}

/** Constant-time comparison of a submitted form token with the session's. */
export function csrfMatches(session: Session, submitted: string | undefined): boolean {
  if (submitted === undefined) return false;
  const given = Buffer.from(submitted);
  const expected = Buffer.from(session.csrf);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
