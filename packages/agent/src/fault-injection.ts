import type { Logger } from "@ferry/core";
import type { TransactionPhase } from "./state-file.js";

/** Where a test may stop the agent: after a transaction phase is persisted, or just before a self-restart exit. */
export type FaultPoint = TransactionPhase | "self-restart";

/**
 * FERRY_AGENT_FAULT=pause-after:POINT makes the agent stop dead right after
 * persisting that phase (or, for self-restart, just before that exit), so
 * end-to-end tests can kill it at an exact point. Unset in production; the
 * agent logs loudly when it is set.
 */
export function faultInjectionFromEnv(log: Logger, env: NodeJS.ProcessEnv = process.env): ((point: FaultPoint) => Promise<void>) | undefined {
  const spec = env["FERRY_AGENT_FAULT"];
  if (!spec) return undefined;
  const match = /^pause-after:([a-z-]+)$/.exec(spec);
  if (!match) {
    log.error({ spec }, "ignoring malformed FERRY_AGENT_FAULT");
    return undefined;
  }
  const target = match[1];
  log.warn({ spec }, "fault injection enabled: this agent will pause mid-transaction");
  return async (phase) => {
    if (phase !== target) return;
    log.warn({ phase }, "fault injection: pausing after this phase");
    await new Promise<never>(() => setInterval(() => undefined, 1 << 30));
  };
}
