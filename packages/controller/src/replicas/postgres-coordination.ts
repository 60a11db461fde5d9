import pg from "pg";
import type { Logger } from "@ferry/core";
import { HOST_CHANGES_CHANNEL } from "../store/sql-store.js";
import type { Coordination, RolloutNews } from "./coordination.js";

const ROLLOUTS_CHANNEL = "ferry_rollouts";
/** Any fixed number, the same in every replica: whoever holds this session lock drives rollouts. */
const LEADER_LOCK = 0x666572_02;
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
  private readonly rolloutListeners: ((news: RolloutNews) => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Lead attempts and pings never overlap. */
  private busy = false;

  constructor(
    private readonly url: string,
    private readonly log: Logger,
  ) {}

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

  onRolloutNews(listener: (news: RolloutNews) => void): void {
    this.rolloutListeners.push(listener);
  }

  async announce(news: RolloutNews): Promise<void> {
    const client = await this.session();
    if (!client) throw new Error("no database session to announce on");
    await client.query("SELECT pg_notify($1, $2)", [ROLLOUTS_CHANNEL, JSON.stringify(news)]);
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
      await this.handlers.gained();
    } catch (error) {
      this.log.warn({ err: error instanceof Error ? error.message : String(error) }, "replica coordination: leader check failed");
    } finally {
      this.busy = false;
    }
  }

  private notified(channel: string, payload: string): void {
    if (channel === HOST_CHANGES_CHANNEL) {
      for (const listener of this.hostListeners) listener();
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
    await this.resign(true);
    const client = this.client;
    this.client = undefined;
    if (client) {
      client.removeAllListeners("end");
      await client.end().catch(() => undefined);
    }
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
