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
  /** A host removed by some replica: its agent, if linked here, must be cut. */
  onHostRemoved(listener: (name: string) => void): void;
  /** A rollout was started, or a command queued for the leader, by some replica. */
  onRolloutNews(listener: (news: RolloutNews) => void): void;
  announce(news: RolloutNews): Promise<void>;
  /** Narinfos this replica stored, changed or removed in the shared cache directory: the others re-read them. */
  announceCache(hash: string): void;
  onCacheChanges(listener: (hashes: string[]) => void): void;
  /**
   * Deploys (shared) against cache collections (exclusive) on every replica:
   * a collection on one replica never deletes what a deploy on another has
   * checked and is recording. Undefined for a lone controller.
   */
  readonly collectionGuard: CollectionGuard | undefined;
  close(): Promise<void>;
}

export interface CollectionGuard {
  shared<T>(work: () => Promise<T>): Promise<T>;
  exclusive<T>(work: () => Promise<T>): Promise<T>;
}

export type RolloutNews = { kind: "started"; rolloutId: string } | { kind: "command" };

export class SoloCoordination implements Coordination {
  readonly replicated = false;
  readonly collectionGuard = undefined;

  async lead(handlers: { gained: () => Promise<void> }): Promise<void> {
    await handlers.gained();
  }

  onHostChanges(): void {}

  onHostRemoved(): void {}

  onRolloutNews(): void {}

  async announce(): Promise<void> {}

  announceCache(): void {}

  onCacheChanges(): void {}

  async close(): Promise<void> {}
}
