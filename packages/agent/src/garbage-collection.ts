import type { Logger, Nix } from "@ferry/core";
import type { AgentConfig } from "./config.js";

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

export function scheduleGarbageCollection(config: GcConfig, nix: Nix, log: Logger, busy: () => boolean): { stop(): void } | undefined {
  const schedule = config.gcSchedule;
  if (!schedule) return undefined;
  // node-cron is loaded only by agents with a schedule: the others keep its memory.
  let task: { stop(): unknown } | undefined;
  let stopped = false;
  void import("node-cron").then(({ default: cron }) => {
    if (stopped) return;
    task = cron.schedule(
      schedule,
      async () => {
        // Never collect in the middle of an activation: the next closure may only be rooted by the transaction.
        if (busy()) {
          log.info("skipping scheduled garbage collection: an activation is in progress");
          return;
        }
        await collectGarbage(config, nix, log).catch((error: unknown) => log.error({ err: (error as Error).message }, "garbage collection failed"));
      },
      { name: "ferry-agent-gc", noOverlap: true },
    );
  });
  return {
    stop: () => {
      stopped = true;
      void task?.stop();
    },
  };
}
