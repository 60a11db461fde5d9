import type { EventEmitter } from "node:events";
import type { Logger } from "@ferry/core";
import { rolloutOutcome } from "../rollouts/outcome.js";
import type { RolloutStore } from "../store/rollout-records.js";
import type { ControllerMetrics } from "./registry.js";

/** Finished rollouts remembered so that later change events (an aborted rollout's reverts) do not count them twice. */
const REMEMBERED = 10_000;

/**
 * Counts each rollout once, when it is first seen finished, by listening to
 * the controller's rollout change events and reading the record (the engine
 * emits after it stored each step, so the finishing step is always read).
 * Rollouts already finished at start, still reverting hosts, are not counted.
 */
export class RolloutOutcomes {
  private readonly counted = new Set<string>();
  private readonly listener = (id: string): void => void this.onChanged(id);

  constructor(
    private readonly rollouts: RolloutStore,
    private readonly metrics: ControllerMetrics,
    private readonly events: EventEmitter,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    for (const rollout of await this.rollouts.activeRollouts()) if (rolloutOutcome(rollout) !== "") this.remember(rollout.id);
    this.events.on("changed", this.listener);
  }

  stop(): void {
    this.events.off("changed", this.listener);
  }

  private async onChanged(id: string): Promise<void> {
    if (this.counted.has(id)) return;
    try {
      const outcome = rolloutOutcome(await this.rollouts.getRollout(id));
      if (outcome === "" || this.counted.has(id)) return;
      this.remember(id);
      this.metrics.rolloutFinished(outcome);
    } catch (error) {
      this.log.debug({ rolloutId: id, err: String(error) }, "rollout outcome not counted");
    }
  }

  private remember(id: string): void {
    this.counted.add(id);
    if (this.counted.size > REMEMBERED) this.counted.delete(this.counted.values().next().value as string);
  }
}
