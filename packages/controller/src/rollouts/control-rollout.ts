import type { Logger } from "@ferry/core";
import type { AuditLog } from "../audit/audit-log.js";
import { authorize, type Principal } from "../auth/authorize.js";
import { deployTarget } from "../auth/deploy-target.js";
import type { RolloutRecord } from "../store/rollout-records.js";
import type { StateStore } from "../store/state-store.js";
import type { RolloutEngine } from "./engine.js";

export type RolloutControl = "pause" | "resume" | "abort" | "promote";

export interface RolloutControlDeps {
  store: StateStore;
  engine: RolloutEngine;
  audit: AuditLog;
  log: Logger;
}

/**
 * An operator's pause, resume, abort or promotion, whichever way it arrives
 * (gRPC ControlRollout, a dashboard form): the token must hold `deploy` for
 * every host of the rollout and its environment, and what was done is
 * audited under the token's name.
 */
export async function controlRollout(
  deps: RolloutControlDeps,
  caller: Principal,
  id: string,
  action: RolloutControl,
  reason: string,
  options: { acceptFailingChecks?: boolean; via?: string } = {},
): Promise<RolloutRecord> {
  const rollout = await deps.store.rollouts.getRollout(id);
  authorize(
    caller,
    "deploy",
    await deployTarget(
      deps.store,
      rollout.hosts.map((host) => host.name),
      rollout.environment,
    ),
  );
  const shortReason = reason.slice(0, 500);
  const record = await deps.engine.control(id, action, shortReason, { acceptFailingChecks: options.acceptFailingChecks === true });
  deps.log.info(
    { rolloutId: id, action, acceptFailingChecks: options.acceptFailingChecks || undefined, token: caller.name, via: options.via },
    "rollout control",
  );
  await deps.audit.record(caller.name, `rollout.${action}`, id, {
    ...(shortReason ? { reason: shortReason } : {}),
    ...(options.via ? { via: options.via } : {}),
  });
  return record;
}
