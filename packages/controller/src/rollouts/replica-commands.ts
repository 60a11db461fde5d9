import { FerryError, toFerryError, type Logger } from "@ferry/core";
import type { RolloutAction, RolloutCommandQueue, RolloutRecord, RolloutStore } from "../store/rollout-records.js";
import type { RolloutNews } from "../replicas/coordination.js";

/** How long a queued command may wait for a leader to take it, and then for the leader to finish it. */
const TAKE_WITHIN_MS = 10_000;
const FINISH_WITHIN_MS = 60_000;
const POLL_MS = 50;

export interface ForwardDeps {
  commands: RolloutCommandQueue;
  rollouts: Pick<RolloutStore, "getRollout">;
  announce: (news: RolloutNews) => Promise<void>;
  now: () => number;
}

/**
 * An operator's action taken by a replica that does not drive rollouts: the
 * command is queued in the database for the replica that does, and its
 * outcome (or its refusal, with the leader's error code) is answered here.
 * A command nobody takes in time expires and is never run later.
 */
export async function forwardControl(
  deps: ForwardDeps,
  id: string,
  action: RolloutAction,
  reason: string,
  options: { acceptFailingChecks?: boolean },
): Promise<RolloutRecord> {
  await deps.rollouts.getRollout(id);
  const commandId = await deps.commands.queue({
    rolloutId: id,
    action,
    reason,
    acceptFailingChecks: options.acceptFailingChecks === true,
    createdAtMs: deps.now(),
  });
  await deps.announce({ kind: "command" });
  const queuedAt = Date.now();
  for (;;) {
    const state = await deps.commands.state(commandId);
    if (state.state === "done") return deps.rollouts.getRollout(id);
    if (state.state === "failed") throw new FerryError(state.errorCode as never, state.errorMessage);
    const waited = Date.now() - queuedAt;
    if (state.state === "pending" && waited > TAKE_WITHIN_MS && (await deps.commands.expire(commandId))) {
      throw new FerryError("E_NO_LEADER", `no controller replica drives rollouts right now; ${action} of rollout ${id} was not done`);
    }
    if (waited > TAKE_WITHIN_MS + FINISH_WITHIN_MS) {
      throw new FerryError(
        "E_NO_LEADER",
        `the replica driving rollouts took the ${action} of rollout ${id} but did not finish it within a minute; check ferry rollout status`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/** The leader's side: runs every queued command through the engine and records each outcome. */
export async function runQueuedCommands(
  commands: RolloutCommandQueue,
  control: (id: string, action: RolloutAction, reason: string, options: { acceptFailingChecks: boolean }) => Promise<RolloutRecord>,
  log: Logger,
): Promise<void> {
  for (const command of await commands.claim()) {
    try {
      await control(command.rolloutId, command.action, command.reason, { acceptFailingChecks: command.acceptFailingChecks });
      await commands.finish(command.id, undefined);
      log.info({ rolloutId: command.rolloutId, action: command.action, commandId: command.id }, "rollout command from another replica done");
    } catch (error) {
      const failure = toFerryError(error);
      await commands.finish(command.id, { errorCode: failure.code, errorMessage: failure.message });
    }
  }
}
