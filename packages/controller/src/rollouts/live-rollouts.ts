import type { RolloutHostPatch, RolloutHostRecord, RolloutRecord } from "../store/rollout-records.js";
import { AWAITING_HOST } from "./observe.js";

/** An unfinished rollout as the engine holds it: the record, and what changed since the last step. */
export interface Live {
  rollout: RolloutRecord;
  byName: Map<string, RolloutHostRecord>;
  /** Hosts whose own record changed since the last step: the only ones a step reads. */
  dirty: Set<string>;
  /** Host rows changed in memory, written in one transaction at the end of the step. */
  patches: Map<string, RolloutHostPatch>;
  /** Each host's tags, for maintenance windows; read once, refreshed when the host changes. */
  tags: Map<string, string[]>;
  changed: boolean;
}

/** Still to drive: not finished, or hosts still on their way after an abort. */
export function stillActive(rollout: RolloutRecord): boolean {
  return (rollout.state !== "completed" && rollout.state !== "aborted") || rollout.hosts.some((host) => AWAITING_HOST.has(host.state));
}

/** The unfinished rollouts in memory, and which of them holds each host. */
export class LiveRollouts {
  private readonly live = new Map<string, Live>();
  private readonly holder = new Map<string, string>();

  adopt(rollout: RolloutRecord): void {
    const byName = new Map(rollout.hosts.map((host) => [host.name, host]));
    // Everything is unknown after a (re)start: every host is read once.
    this.live.set(rollout.id, { rollout, byName, dirty: new Set(byName.keys()), patches: new Map(), tags: new Map(), changed: false });
    for (const name of byName.keys()) this.holder.set(name, rollout.id);
  }

  /** Forgets every rollout: the engine stopped driving them (another replica may now). */
  clear(): void {
    this.live.clear();
    this.holder.clear();
  }

  retire(live: Live): void {
    this.live.delete(live.rollout.id);
    for (const name of live.byName.keys()) if (this.holder.get(name) === live.rollout.id) this.holder.delete(name);
  }

  get(id: string): Live | undefined {
    return this.live.get(id);
  }

  all(): Live[] {
    return [...this.live.values()];
  }

  /** Marks hosts for the next step; true if any is in an unfinished rollout. */
  mark(names: Iterable<string>): boolean {
    let marked = false;
    for (const name of names) {
      const id = this.holder.get(name);
      if (id === undefined) continue;
      this.live.get(id)?.dirty.add(name);
      marked = true;
    }
    return marked;
  }
}
