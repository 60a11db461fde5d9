import pg from "pg";
import { assertHostName, isStoreHash, type Logger } from "@ferry/core";
import { HOST_CHANGES_CHANNEL, HOST_REMOVED_CHANNEL } from "../store/sql-store.js";
import type { CollectionGuard, Coordination, RolloutNews } from "./coordination.js";

const ROLLOUTS_CHANNEL = "ferry_rollouts";
const CACHE_CHANNEL = "ferry_cache";
/** Narinfo hashes (32 characters) per notification: well under PostgreSQL's 8000-byte payload. */
const HASHES_PER_NOTIFY = 200;
/** Any fixed number, the same in every replica: whoever holds this session lock drives rollouts. */
const LEADER_LOCK = 0x666572_02;
/** Taken shared by deploys, exclusive by cache collections, on every replica. */
const COLLECTION_LOCK = 0x666572_03;
/** How often a replica without the lock tries again, and how often the holder checks its session is alive. */
const LEAD_RETRY_MS = 2000;
const PING_MS = 2000;
const PING_TIMEOUT_MS = 4000;

/**
 * One PostgreSQL session per replica for LISTEN and the leader's advisory
 * lock. The lock belongs to the session: when the replica dies or its
 * session breaks, PostgreSQL releases it and another replica takes over.
 * A holder that cannot reach the database (pings fail) stops driving at
 * once, and only tries again on a new session: it never drives without
 * holding the lock as far as it can tell.
 */
export class PostgresCoordination implements Coordination {
  readonly replicated = true;
  private client: pg.Client | undefined;
  private connecting: Promise<pg.Client | undefined> | undefined;
  private leading = false;
  private handlers: { gained: () => Promise<void>; lost: () => Promise<void> } | undefined;
  private readonly hostListeners: (() => void)[] = [];
  private readonly removalListeners: ((name: string) => void)[] = [];
  private readonly rolloutListeners: ((news: RolloutNews) => void)[] = [];
  private readonly cacheListeners: ((hashes: string[]) => void)[] = [];
  private cacheChanges = new Set<string>();
  private cacheTimer: NodeJS.Timeout | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Lead attempts and pings never overlap. */
  private busy = false;

  readonly collectionGuard: CollectionGuard;
  /** Sessions that hold the collection lock while a deploy or a collection runs. */
  private readonly lockSessions: pg.Pool;

  constructor(
    private readonly url: string,
    private readonly log: Logger,
  ) {
    this.lockSessions = new pg.Pool({ connectionString: url, max: 4, connectionTimeoutMillis: 10_000, application_name: "ferry-controller-locks" });
    this.lockSessions.on("error", (error) => log.warn({ err: error.message }, "replica coordination: a lock session ended"));
    this.lockSessions.on("connect", (client) => client.on("error", () => undefined));
    this.collectionGuard = {
      shared: (work) => this.holding("pg_advisory_lock_shared", "pg_advisory_unlock_shared", work),
      exclusive: (work) => this.holding("pg_advisory_lock", "pg_advisory_unlock", work),
    };
  }

  private async holding<T>(lock: string, unlock: string, work: () => Promise<T>): Promise<T> {
    const client = await this.lockSessions.connect();
    let broken = false;
    try {
      await client.query(`SELECT ${lock}($1)`, [COLLECTION_LOCK]);
      return await work();
    } finally {
      try {
        await client.query(`SELECT ${unlock}($1)`, [COLLECTION_LOCK]);
      } catch {
        // A session that cannot unlock is ended, which releases the lock too.
        broken = true;
      }
      client.release(broken);
    }
  }

  async start(): Promise<void> {
    await this.session();
    this.timer = setInterval(() => void this.beat(), Math.min(LEAD_RETRY_MS, PING_MS));
    this.timer.unref();
  }

  async lead(handlers: { gained: () => Promise<void>; lost: () => Promise<void> }): Promise<void> {
    this.handlers = handlers;
    await this.beat();
  }

  onHostChanges(listener: () => void): void {
    this.hostListeners.push(listener);
  }

  onHostRemoved(listener: (name: string) => void): void {
    this.removalListeners.push(listener);
  }

  onRolloutNews(listener: (news: RolloutNews) => void): void {
    this.rolloutListeners.push(listener);
  }

  async announce(news: RolloutNews): Promise<void> {
    const client = await this.session();
    if (!client) throw new Error("no database session to announce on");
    await client.query("SELECT pg_notify($1, $2)", [ROLLOUTS_CHANNEL, JSON.stringify(news)]);
  }

  announceCache(hash: string): void {
    this.cacheChanges.add(hash);
    // A push stores hundreds of narinfos in a burst: one notification per 200 of them.
    this.cacheTimer ??= setTimeout(() => {
      this.cacheTimer = undefined;
      const hashes = [...this.cacheChanges];
      this.cacheChanges = new Set();
      void this.sendCacheChanges(hashes);
    }, 20);
  }

  onCacheChanges(listener: (hashes: string[]) => void): void {
    this.cacheListeners.push(listener);
  }

  private async sendCacheChanges(hashes: string[]): Promise<void> {
    try {
      const client = await this.session();
      for (let start = 0; client && start < hashes.length; start += HASHES_PER_NOTIFY) {
        await client.query("SELECT pg_notify($1, $2)", [CACHE_CHANNEL, hashes.slice(start, start + HASHES_PER_NOTIFY).join(",")]);
      }
    } catch (error) {
      // The others then see the change when a NAR download misses, or at their next start.
      this.log.warn(
        { err: error instanceof Error ? error.message : String(error), narinfos: hashes.length },
        "could not tell other replicas about cache changes",
      );
    }
  }

  private async session(): Promise<pg.Client | undefined> {
    if (this.client) return this.client;
    this.connecting ??= this.connect().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async connect(): Promise<pg.Client | undefined> {
    if (this.closed) return undefined;
    const client = new pg.Client({
      connectionString: this.url,
      application_name: "ferry-controller-coordination",
      keepAlive: true,
      keepAliveInitialDelayMillis: 5000,
      connectionTimeoutMillis: 5000,
    });
    client.on("error", (error) => this.drop(client, error));
    client.on("end", () => this.drop(client, new Error("session ended")));
    client.on("notification", (message) => this.notified(message.channel, message.payload ?? ""));
    try {
      await client.connect();
      await client.query(`LISTEN ${HOST_CHANGES_CHANNEL}`);
      await client.query(`LISTEN ${ROLLOUTS_CHANNEL}`);
      await client.query(`LISTEN ${CACHE_CHANNEL}`);
      await client.query(`LISTEN ${HOST_REMOVED_CHANNEL}`);
    } catch (error) {
      this.log.warn({ err: error instanceof Error ? error.message : String(error) }, "replica coordination: cannot reach the database; retrying");
      client.removeAllListeners("end");
      await client.end().catch(() => undefined);
      return undefined;
    }
    this.client = client;
    this.log.info("replica coordination: listening for other replicas' changes");
    // What was committed while no session listened is read now.
    for (const listener of this.hostListeners) listener();
    this.rolloutNews({ kind: "command" });
    return client;
  }

  private drop(client: pg.Client, error: Error): void {
    if (this.client !== client) return;
    this.client = undefined;
    client.removeAllListeners("end");
    void client.end().catch(() => undefined);
    if (!this.closed) this.log.warn({ err: error.message }, "replica coordination: database session lost");
    if (this.leading) void this.resign();
  }

  private async resign(stopping = false): Promise<void> {
    if (!this.leading) return;
    this.leading = false;
    if (stopping) this.log.info("this replica stops driving rollouts (stopping); another replica takes over");
    else this.log.warn("this replica no longer drives rollouts (its database session ended)");
    await this.handlers?.lost().catch((error: unknown) => this.log.error({ err: String(error) }, "stopping the rollout engine failed"));
  }

  private async beat(): Promise<void> {
    if (this.busy || this.closed) return;
    this.busy = true;
    try {
      const client = await this.session();
      if (!client) return;
      if (this.leading) {
        await withTimeout(client.query("SELECT 1"), PING_TIMEOUT_MS).catch((error: unknown) =>
          this.drop(client, error instanceof Error ? error : new Error(String(error))),
        );
        return;
      }
      if (!this.handlers) return;
      const result = await client.query<{ locked: boolean }>("SELECT pg_try_advisory_lock($1) AS locked", [LEADER_LOCK]);
      if (result.rows[0]?.locked !== true || this.client !== client) return;
      this.leading = true;
      this.log.info("this replica drives rollouts (leader lock taken)");
      try {
        await this.handlers.gained();
      } catch (error) {
        // Holding the lock without driving would stall every rollout: give it back for another replica.
        this.leading = false;
        await this.handlers.lost().catch(() => undefined);
        await client.query("SELECT pg_advisory_unlock($1)", [LEADER_LOCK]).catch(() => this.drop(client, new Error("cannot release the leader lock")));
        throw error;
      }
      // The session ended while the engine started: it stopped driving then, but the start may have finished after.
      if (!this.leading) await this.handlers.lost();
    } catch (error) {
      this.log.warn({ err: error instanceof Error ? error.message : String(error) }, "replica coordination: leader check failed");
    } finally {
      this.busy = false;
    }
  }

  private notified(channel: string, payload: string): void {
    if (channel === HOST_CHANGES_CHANNEL) {
      for (const listener of this.hostListeners) listener();
    } else if (channel === HOST_REMOVED_CHANNEL) {
      let name: string;
      try {
        name = assertHostName(payload);
      } catch {
        return;
      }
      for (const listener of this.removalListeners) listener(name);
    } else if (channel === CACHE_CHANNEL) {
      const hashes = payload.split(",").filter(isStoreHash);
      if (hashes.length > 0) for (const listener of this.cacheListeners) listener(hashes);
    } else if (channel === ROLLOUTS_CHANNEL) {
      try {
        const news = JSON.parse(payload) as RolloutNews;
        if (news.kind === "started" && typeof news.rolloutId === "string") this.rolloutNews(news);
        else if (news.kind === "command") this.rolloutNews(news);
      } catch {
        // Only replicas notify this channel; a payload that is not ours is ignored.
      }
    }
  }

  private rolloutNews(news: RolloutNews): void {
    for (const listener of this.rolloutListeners) listener(news);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    clearTimeout(this.cacheTimer);
    await this.resign(true);
    const client = this.client;
    this.client = undefined;
    if (client) {
      client.removeAllListeners("end");
      await client.end().catch(() => undefined);
    }
    await this.lockSessions.end().catch(() => undefined);
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer from the database within ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
