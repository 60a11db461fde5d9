/**
 * What replicas sharing one database tell each other. One controller on
 * SQLite is its own leader and hears nothing (SoloCoordination); replicas on
 * PostgreSQL use LISTEN/NOTIFY and an advisory lock (PostgresCoordination).
 */
export interface Coordination {
  /** False for a lone controller: nothing to forward, every rollout is driven here. */
  readonly replicated: boolean;
  /**
   * Calls `gained` when this process becomes the one replica that drives
   * rollouts and `lost` when it stops being it (its database session ended);
   * `lost` runs before another replica can gain it. Resolves after the
   * first attempt (and its `gained`, if it won); later attempts run on their own.
   */
  lead(handlers: { gained: () => Promise<void>; lost: () => Promise<void> }): Promise<void>;
  /** Another replica committed host changes (a deploy, reports): read them with changesSince. */
  onHostChanges(listener: () => void): void;
  /** A rollout was started, or a command queued for the leader, by some replica. */
  onRolloutNews(listener: (news: RolloutNews) => void): void;
  announce(news: RolloutNews): Promise<void>;
  close(): Promise<void>;
}

export type RolloutNews = { kind: "started"; rolloutId: string } | { kind: "command" };

export class SoloCoordination implements Coordination {
  readonly replicated = false;

  async lead(handlers: { gained: () => Promise<void> }): Promise<void> {
    await handlers.gained();
  }

  onHostChanges(): void {}

  onRolloutNews(): void {}

  async announce(): Promise<void> {}

  async close(): Promise<void> {}
}
