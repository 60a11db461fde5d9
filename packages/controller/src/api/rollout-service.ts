import type { EventEmitter } from "node:events";
import { FerryError, assertHostName, assertTag, type Logger } from "@ferry/core";
import {
  RolloutAction,
  type AddMaintenanceWindowRequest,
  type AddMaintenanceWindowResponse,
  type ControlRolloutRequest,
  type ControlRolloutResponse,
  type GetRolloutRequest,
  type GetRolloutResponse,
  type ListMaintenanceWindowsResponse,
  type ListRolloutsRequest,
  type ListRolloutsResponse,
  type RemoveMaintenanceWindowRequest,
  type RemoveMaintenanceWindowResponse,
  type Rollout,
  type StartRolloutRequest,
  type StartRolloutResponse,
} from "@ferry/protocol";
import type { AuditLog } from "../audit/audit-log.js";
import type { Authenticator } from "../auth/authenticate.js";
import { authorize } from "../auth/authorize.js";
import { deployTarget } from "../auth/deploy-target.js";
import type { ClosureSource } from "../cache/closure-source.js";
import { phaseDeadlineAtMs } from "../rollouts/deadline.js";
import type { RolloutEngine } from "../rollouts/engine.js";
import { rolloutOutcome } from "../rollouts/outcome.js";
import { planRollout } from "../rollouts/start.js";
import { controlRollout } from "../rollouts/control-rollout.js";
import { validateWindow } from "../rollouts/windows.js";
import type { RolloutRecord } from "../store/rollout-records.js";
import type { StateStore } from "../store/state-store.js";
import { newId } from "../desired/targets.js";
import { unaryHandler } from "./unary.js";

export interface RolloutServiceDeps {
  store: StateStore;
  /** What a rollout's closures are checked against: the cache directory, or the external cache. */
  closures: ClosureSource;
  engine: RolloutEngine;
  log: Logger;
  authenticator: Authenticator;
  audit: AuditLog;
  rolloutEvents: EventEmitter;
  now?: () => number;
}

export function toRolloutMessage(record: RolloutRecord): Rollout {
  return {
    id: record.id,
    state: record.state,
    environment: record.environment,
    manifestDigest: record.manifestDigest,
    policy: { ...record.policy },
    waveCount: record.waveCount,
    currentWave: record.currentWave,
    reason: record.reason,
    requestedBy: record.requestedBy,
    createdAtMs: record.createdAtMs,
    updatedAtMs: record.updatedAtMs,
    resumeAtMs: record.resumeAtMs,
    mode: record.mode,
    outcome: rolloutOutcome(record),
    phaseDeadlineAtMs: phaseDeadlineAtMs(record),
    hosts: record.hosts.map((host) => ({
      name: host.name,
      storePath: host.storePath,
      wave: host.wave,
      state: host.state,
      errorCode: host.errorCode,
      errorMessage: host.errorMessage,
      previousSystem: host.previousSystem,
      updatedAtMs: host.updatedAtMs,
    })),
  };
}

const ACTIONS: Partial<Record<RolloutAction, "pause" | "resume" | "abort" | "promote">> = {
  [RolloutAction.ROLLOUT_ACTION_PAUSE]: "pause",
  [RolloutAction.ROLLOUT_ACTION_RESUME]: "resume",
  [RolloutAction.ROLLOUT_ACTION_ABORT]: "abort",
  [RolloutAction.ROLLOUT_ACTION_PROMOTE]: "promote",
};

/** Rollout and maintenance-window handlers of the operator service. */
export function createRolloutHandlers(deps: RolloutServiceDeps) {
  const now = deps.now ?? Date.now;
  const unary = unaryHandler(deps.log, deps.authenticator);
  return {
    startRollout: unary("StartRollout", async (request: StartRolloutRequest, caller): Promise<StartRolloutResponse> => {
      // Who asked is the token's name, never what the client says.
      const record = await planRollout(deps.store, deps.closures, { ...request, requestedBy: caller.name }, now());
      authorize(
        caller,
        "deploy",
        await deployTarget(
          deps.store,
          record.hosts.map((host) => host.name),
          record.environment,
        ),
      );
      await deps.engine.begin(record);
      deps.log.info({ rolloutId: record.id, hosts: record.hosts.length, waves: record.waveCount, requestedBy: record.requestedBy }, "rollout started");
      await deps.audit.record(caller.name, "rollout.start", record.id, {
        environment: record.environment,
        hosts: Object.fromEntries(record.hosts.map((host) => [host.name, host.storePath])),
        mode: record.mode,
        ...(request.requestedBy ? { clientNote: request.requestedBy.slice(0, 200) } : {}),
      });
      return { rollout: toRolloutMessage(record) };
    }),

    getRollout: unary("GetRollout", async (request: GetRolloutRequest): Promise<GetRolloutResponse> => ({
      rollout: toRolloutMessage(await deps.store.rollouts.getRollout(request.id)),
    })),

    listRollouts: unary("ListRollouts", async (request: ListRolloutsRequest): Promise<ListRolloutsResponse> => ({
      rollouts: (await deps.store.rollouts.listRollouts(Math.min(request.limit || 50, 1000))).map(toRolloutMessage),
    })),

    controlRollout: unary("ControlRollout", async (request: ControlRolloutRequest, caller): Promise<ControlRolloutResponse> => {
      const action = ACTIONS[request.action];
      if (!action) throw new FerryError("E_BAD_ARGUMENT", "unknown rollout action");
      const record = await controlRollout(deps, caller, request.id, action, request.reason, { acceptFailingChecks: request.acceptFailingChecks });
      return { rollout: toRolloutMessage(record) };
    }),

    addMaintenanceWindow: unary("AddMaintenanceWindow", async (request: AddMaintenanceWindowRequest, caller): Promise<AddMaintenanceWindowResponse> => {
      const window = request.window;
      if (!window) throw new FerryError("E_BAD_ARGUMENT", "no window given");
      if ((window.hostName === "") === (window.tag === "")) throw new FerryError("E_BAD_ARGUMENT", "a window applies to exactly one host or one tag");
      if (window.tag) assertTag(window.tag);
      const record = {
        id: newId("w", now()),
        hostName: window.hostName && assertHostName(window.hostName),
        tag: window.tag,
        cron: window.cron.trim(),
        durationMs: window.durationMs,
        timezone: window.timezone,
      };
      validateWindow(record);
      await deps.store.rollouts.addWindow(record);
      deps.engine.poke();
      await deps.audit.record(caller.name, "window.add", record.id, {
        hostName: record.hostName,
        tag: record.tag,
        cron: record.cron,
        durationMs: record.durationMs,
      });
      return { window: record };
    }),

    listMaintenanceWindows: unary("ListMaintenanceWindows", async (): Promise<ListMaintenanceWindowsResponse> => ({
      windows: await deps.store.rollouts.listWindows(),
    })),

    removeMaintenanceWindow: unary(
      "RemoveMaintenanceWindow",
      async (request: RemoveMaintenanceWindowRequest, caller): Promise<RemoveMaintenanceWindowResponse> => {
        await deps.store.rollouts.removeWindow(request.id);
        deps.engine.poke();
        await deps.audit.record(caller.name, "window.remove", request.id);
        return {};
      },
    ),
  };
}
