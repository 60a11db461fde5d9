import type { Logger } from "@ferry/core";
import type { AuditEntry, AuditStore } from "../store/access-records.js";

/** Every action the audit trail records; the name appears in `ferry audit`. */
export type AuditAction =
  | "host.add"
  | "host.remove"
  | "host.rotate-token"
  | "deploy"
  | "dry-activate"
  | "rollback"
  | "rollout.start"
  | "rollout.pause"
  | "rollout.resume"
  | "rollout.abort"
  | "rollout.promote"
  | "window.add"
  | "window.remove"
  | "bundle.import"
  | "cache.push"
  | "cache.rm"
  | "cache.gc"
  | "token.create"
  | "token.revoke"
  | "token.rotate";

/** Store paths listed in one cache.push entry; the count covers the rest. */
const PUSHED_PATHS_LISTED = 100;
const PUSH_FLUSH_MS = 1000;

/**
 * Records who did what, under the name of the token that did it, after the
 * action succeeded. A failed audit write is logged, never turned into a
 * failure of the action the caller already saw happen. Cache uploads arrive
 * one narinfo per request, so they are gathered per token for a second and
 * recorded as one entry.
 */
export class AuditLog {
  private readonly pushes = new Map<string, { atMs: number; paths: string[]; count: number }>();
  private flushTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: AuditStore,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  async record(actor: string, action: AuditAction, target: string, detail: Record<string, unknown> = {}): Promise<void> {
    await this.write([{ atMs: this.now(), actor, action, target, detail }]);
  }

  /** One narinfo stored by `actor`'s upload: the cache now serves `storePath`. */
  notePush(actor: string, storePath: string): void {
    const batch = this.pushes.get(actor) ?? { atMs: this.now(), paths: [], count: 0 };
    batch.count += 1;
    if (batch.paths.length < PUSHED_PATHS_LISTED) batch.paths.push(storePath);
    this.pushes.set(actor, batch);
    if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => void this.flush(), PUSH_FLUSH_MS);
      this.flushTimer.unref();
    }
  }

  /** Writes the gathered cache pushes now (at stop, and in tests). */
  flush(): Promise<void> {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const entries: Omit<AuditEntry, "id">[] = [...this.pushes].map(([actor, batch]) => ({
      atMs: batch.atMs,
      actor,
      action: "cache.push",
      target: batch.count === 1 ? (batch.paths[0] as string) : `${batch.count} paths`,
      detail: { count: batch.count, paths: batch.paths },
    }));
    this.pushes.clear();
    this.flushing = this.flushing.then(() => (entries.length > 0 ? this.write(entries) : undefined));
    return this.flushing;
  }

  private async write(entries: Omit<AuditEntry, "id">[]): Promise<void> {
    for (const { actor, action, target } of entries) this.log.info({ actor, action, target }, "audit");
    try {
      await this.store.append(entries);
    } catch (error) {
      this.log.error({ err: String(error), entries }, "could not record audit entries");
    }
  }
}
