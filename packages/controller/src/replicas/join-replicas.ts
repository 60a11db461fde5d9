import type { EventEmitter } from "node:events";
import type { Logger } from "@ferry/core";
import type { AgentHub } from "../hub/agent-hub.js";
import type { RolloutEngine } from "../rollouts/engine.js";
import type { StateStore } from "../store/state-store.js";
import type { BinaryCache } from "../cache/binary-cache.js";
import { SoloCoordination, type Coordination } from "./coordination.js";
import { PostgresCoordination } from "./postgres-coordination.js";
import { HostFeed } from "./host-feed.js";
import { RemotePresence } from "./remote-presence.js";

/** A lone controller coordinates with nobody; replicas on PostgreSQL through it (LISTEN/NOTIFY, advisory locks). */
export async function openCoordination(database: string | undefined, log: Logger): Promise<Coordination> {
  if (!database) return new SoloCoordination();
  const replicas = new PostgresCoordination(database, log);
  await replicas.start();
  return replicas;
}

/** A cache directory the replicas share: deploys and collections exclude each other everywhere, and narinfo changes are relayed. */
export function shareCache(coordination: Coordination, cache: BinaryCache, log: Logger): void {
  cache.collectionGuard = coordination.collectionGuard;
  coordination.onCacheChanges(
    (hashes) => void cache.refresh(hashes).catch((error: unknown) => log.warn({ err: String(error) }, "re-reading narinfos another replica changed failed")),
  );
}

export interface ReplicaParts {
  coordination: Coordination;
  store: StateStore;
  hub: AgentHub;
  engine: RolloutEngine;
  /** Host names whose record changed, as the controller announces them to its engine and views. */
  hostEvents: EventEmitter;
  /** Rollout ids whose state changed, for the dashboard and rollout watches. */
  rolloutEvents: EventEmitter;
  heartbeatIntervalMs: number;
  log: Logger;
}

/**
 * What this replica hears from the others sharing its database: rollouts
 * they started or commands they queued (for the leader), host changes (to
 * this replica's agents, engine and views), presence, and removed hosts.
 * Returns the feed to stop, or undefined for a lone controller.
 */
export async function joinReplicas(parts: ReplicaParts): Promise<HostFeed | undefined> {
  const { coordination, hub, engine, hostEvents, rolloutEvents, log } = parts;
  coordination.onRolloutNews((news) => {
    if (news.kind === "started")
      void engine.adopt(news.rolloutId).catch((error: unknown) => log.warn({ err: String(error), rolloutId: news.rolloutId }, "adopting a rollout failed"));
    else engine.takeCommands();
  });
  if (!coordination.replicated) return undefined;
  const presence = new RemotePresence(parts.heartbeatIntervalMs);
  hub.seeOtherReplicas(presence);
  const feed = new HostFeed({
    store: parts.store,
    offerDesired: (host) => hub.offerDesired(host),
    changed: (hosts) => {
      for (const host of hosts) hostEvents.emit("changed", host.name);
      // Rollout views here follow a rollout the leader drives through its hosts' changes.
      for (const rolloutId of new Set(hosts.map((host) => host.rolloutId).filter((id) => id !== ""))) rolloutEvents.emit("changed", rolloutId);
    },
    seen: (host) => presence.seen(host),
    log,
  });
  await feed.start();
  coordination.onHostRemoved((name) => hub.disconnect(name, "host removed by operator (on another replica)"));
  coordination.onHostChanges(() => feed.request());
  return feed;
}
