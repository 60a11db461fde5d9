import type { Logger } from "@ferry/core";
import type { TransactionPhase } from "./state-file.js";

/**
 * FERRY_AGENT_FAULT=pause-after:PHASE makes the agent stop dead right after
 * persisting PHASE, so end-to-end tests can kill it at an exact point of the
 * transaction. Unset in production; the agent logs loudly when it is set.
 */
export function faultInjectionFromEnv(log: Logger, env: NodeJS.ProcessEnv = process.env): ((phase: TransactionPhase) => Promise<void>) | undefined {
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
