import { slices, type LedgerEntry, type Logger } from "@ferry/core";
import type { ActivationMode } from "@ferry/protocol";
import type { ClosureSource } from "../cache/closure-source.js";
import type { AgentHub } from "../hub/agent-hub.js";
import type { RolloutHostState } from "../store/rollout-records.js";
import type { DesiredTarget, HostRecord, StateStore } from "../store/state-store.js";
import { requireClosuresInCache, type CacheRequirements } from "./closures.js";
import { validateTargets } from "./targets.js";

export interface Assignment {
  /** The deployment's id; a rollout step passes the rollout's id. */
  deploymentId: string;
  mode: ActivationMode;
  /** Name of the token that asked for it. */
  requestedBy: string;
  targets: readonly DesiredTarget[];
  /**
   * Where each host gets its closure: this controller's cache, checked now,
   * or the host itself, which already holds it (a system it fetched in a
   * rollout's prefetch, or the one it ran before).
   */
  closures: CacheRequirements | "on-hosts";
  /**
   * With cache requirements: hosts whose target is their own current or
   * previous system, which they hold themselves (a rollback); the cache is
   * not asked for those closures.
   */
  closuresOnHosts?: ReadonlySet<string> | undefined;
  /** A rollout step: the hosts' rollout rows enter `state` in the same transaction. */
  rollout?: { id: string; state: RolloutHostState } | undefined;
  /** A bundle import that deploys: its ledger line, written in the same transaction. */
  bundle?: LedgerEntry | undefined;
}

/** A rollout step's desired frames written per turn of the event loop. */
const ROLLOUT_PUSHES_PER_TURN = 250;

export interface DesiredStateDeps {
  store: StateStore;
  /** The controller's cache directory, or the external cache of --cache-url. */
  cache: ClosureSource;
  hub: Pick<AgentHub, "pushDesired">;
  log: Logger;
  now: () => number;
  /** One event per assignment, naming every host it changed. */
  onChanged: (hostNames: readonly string[]) => void;
}

/**
 * The one path by which a host is given a new desired system: deploys,
 * bundle imports and the rollout engine all come through here, so every
 * assignment is validated, checked against the cache, written in one
 * transaction, pushed to the connected agents and announced the same way.
 */
export class DesiredState {
  constructor(private readonly deps: DesiredStateDeps) {}

  async assign(assignment: Assignment): Promise<HostRecord[]> {
    const { store, cache, hub, log } = this.deps;
    const targets = await validateTargets(store, assignment.targets);
    const write = () =>
      store.assignDesired({
        deploymentId: assignment.deploymentId,
        mode: assignment.mode,
        targets,
        nowMs: this.deps.now(),
        requestedBy: assignment.requestedBy,
        rollout: assignment.rollout,
        bundle: assignment.bundle,
      });
    const { closures } = assignment;
    const records =
      closures === "on-hosts"
        ? await write()
        : await cache.withoutCollection(async () => {
            await requireClosuresInCache(
              cache,
              targets.filter((target) => assignment.closuresOnHosts?.has(target.hostName) !== true).map((target) => target.storePath),
              closures,
            );
            return write();
          });
    // A rollout's wave is paced so that heartbeats are answered between its frames. A deploy is
    // not: agents answer their frames at once, and every pause let those answers run first,
    // spreading a 10,000-host deploy's frames over 1.6 s instead of 0.3 s.
    const perTurn = assignment.rollout ? ROLLOUT_PUSHES_PER_TURN : records.length;
    for await (const part of slices(records, perTurn)) for (const record of part) hub.pushDesired(record);
    const rolloutId = assignment.rollout?.id;
    for (const record of records) {
      log.debug(
        { host: record.name, deploymentId: record.deploymentId, rolloutId, serial: record.desiredSerial, storePath: record.desiredSystem },
        "desired system recorded",
      );
    }
    log.info(
      {
        deploymentId: assignment.deploymentId,
        rolloutId,
        hosts: records.length,
        ...(records.length <= 20 ? { hostNames: records.map((record) => record.name) } : {}),
        systems: new Set(records.map((record) => record.desiredSystem)).size,
        activate: targets.some((target) => target.activate && !target.heldForWindow),
        rolloutState: assignment.rollout?.state,
      },
      "desired systems recorded",
    );
    this.deps.onChanged(records.map((record) => record.name));
    return records;
  }

  /** Turns a deployment held for a maintenance window into an activation, if the host is still held for it. */
  async releaseHeld(host: Pick<HostRecord, "name" | "deploymentId">): Promise<HostRecord | undefined> {
    const released = await this.deps.store.releaseHeld(host.name, host.deploymentId);
    if (!released) return undefined;
    this.deps.log.info(
      { host: host.name, deploymentId: host.deploymentId, serial: released.desiredSerial },
      "maintenance window open: activating the held deployment",
    );
    this.deps.hub.pushDesired(released);
    this.deps.onChanged([released.name]);
    return released;
  }
}
