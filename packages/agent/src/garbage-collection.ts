import type { Logger, Nix } from "@ferry/core";
import type { AgentConfig } from "./config.js";
import { parseCronSchedule, type CronSchedule } from "./cron-schedule.js";

type GcConfig = Pick<AgentConfig, "profile" | "keepGenerations" | "gcSchedule">;

/**
 * Deletes system generations beyond `keepGenerations`, then collects garbage.
 * The agent's own GC roots keep the current and previous systems whatever
 * the profile says.
 */
/** Returns nix-store's last line, such as "1234 store paths deleted, 56.78 MiB freed". */
export async function collectGarbage(config: GcConfig, nix: Nix, log: Logger): Promise<{ keepGenerations: number; summary: string }> {
  await nix.deleteOldGenerations(config.profile, config.keepGenerations);
  const output = await nix.collectGarbage();
  const summary = output.trim().split("\n").at(-1) ?? "";
  log.info({ keepGenerations: config.keepGenerations, summary }, "garbage collected");
  return { keepGenerations: config.keepGenerations, summary };
}

/** A long timer is cut into pieces this long, so that a wall-clock step (NTP, a VM resumed) moves the run with it. */
const REARM_MS = 60 * 60 * 1000;

export function scheduleGarbageCollection(config: GcConfig, nix: Nix, log: Logger, busy: () => boolean): { stop(): void } | undefined {
  const expression = config.gcSchedule;
  if (!expression) return undefined;
  const run = async (): Promise<void> => {
    // Never collect in the middle of an activation: the next closure may only be rooted by the transaction.
    if (busy()) {
      log.info("skipping scheduled garbage collection: an activation is in progress");
      return;
    }
    await collectGarbage(config, nix, log).catch((error: unknown) => log.error({ err: (error as Error).message }, "garbage collection failed"));
  };
  const schedule = parseCronSchedule(expression);
  return schedule ? scheduleLocally(schedule, run) : scheduleWithNodeCron(expression, run);
}

/** Runs `run` at each time the schedule names; a run that is still going when the next is due makes it skip that one. */
function scheduleLocally(schedule: CronSchedule, run: () => Promise<void>): { stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const arm = (due: Date | undefined): void => {
    if (stopped || !due) return;
    timer = setTimeout(
      () => {
        if (Date.now() < due.getTime()) return arm(due);
        void run().finally(() => arm(schedule.next(new Date())));
      },
      Math.min(Math.max(due.getTime() - Date.now(), 0), REARM_MS),
    );
    timer.unref();
  };
  arm(schedule.next(new Date()));
  return {
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/** The expressions parseCronSchedule leaves to node-cron (nicknames, L, W, #, both day fields), loaded only for them. */
function scheduleWithNodeCron(expression: string, run: () => Promise<void>): { stop(): void } {
  let task: { stop(): unknown } | undefined;
  let stopped = false;
  void import("node-cron").then(({ default: cron }) => {
    if (stopped) return;
    task = cron.schedule(expression, run, { name: "ferry-agent-gc", noOverlap: true });
  });
  return {
    stop: () => {
      stopped = true;
      void task?.stop();
    },
  };
}
