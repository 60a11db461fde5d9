import type { ActivationMode, SignedIntent } from "@ferry/protocol";

export interface Quantity {
  value: number;
  percent: boolean;
}

export type RolloutState = "prefetching" | "running" | "paused" | "waiting-gate" | "completed" | "aborted";

export type RolloutHostState =
  | "pending"
  | "prefetching"
  | "prefetched"
  | "unfetchable"
  | "waiting-window"
  | "activating"
  /** Installed as the boot default; counts as confirmed only once the host runs it. */
  | "boot-pending"
  | "confirmed"
  | "failed"
  | "rolled-back"
  | "skipped"
  | "reverting"
  | "reverted";

export interface RolloutPolicy {
  canary: Quantity;
  batch: Quantity;
  maxUnavailable: number;
  failureThreshold: Quantity;
  minExecuted: number;
  pauseMs: number;
  gate: boolean;
  progressDeadlineMs: number;
  rollbackOnAbort: boolean;
  prefetchTimeoutMs: number;
  skipUnfetchable: boolean;
  /** Count a canary whose checks all failed before and after the switch as healthy, instead of pausing. */
  acceptFailingChecks: boolean;
}

export interface RolloutHostRecord {
  name: string;
  storePath: string;
  wave: number;
  state: RolloutHostState;
  /** Desired-system serial this rollout last gave the host; 0 before. */
  serial: number;
  errorCode: string;
  errorMessage: string;
  /** What the host ran when the rollout started: the target of a rollback on abort. */
  previousSystem: string;
  updatedAtMs: number;
  /** Signed when the rollout started; relayed with the host's prefetch and activation (never with a revert). */
  intent?: SignedIntent | undefined;
}

export interface RolloutRecord {
  id: string;
  state: RolloutState;
  environment: string;
  manifestDigest: string;
  policy: RolloutPolicy;
  /** Given to every host this rollout activates or reverts; unspecified: each host's own strategy. */
  mode: ActivationMode;
  waveCount: number;
  currentWave: number;
  reason: string;
  requestedBy: string;
  createdAtMs: number;
  updatedAtMs: number;
  phaseStartedAtMs: number;
  resumeAtMs: number;
  hosts: RolloutHostRecord[];
}

export type RolloutPatch = Partial<Pick<RolloutRecord, "state" | "currentWave" | "reason" | "phaseStartedAtMs" | "resumeAtMs" | "policy">>;
export type RolloutHostPatch = Partial<Pick<RolloutHostRecord, "state" | "errorCode" | "errorMessage">>;

export interface MaintenanceWindowRecord {
  id: string;
  hostName: string;
  tag: string;
  cron: string;
  durationMs: number;
  timezone: string;
}

/** Durable rollout state: every step the engine takes is one of these calls. */
export interface RolloutStore {
  createRollout(rollout: RolloutRecord): Promise<void>;
  getRollout(id: string): Promise<RolloutRecord>;
  listRollouts(limit: number): Promise<RolloutRecord[]>;
  /** Rollouts the engine still drives: not finished, or reverting hosts after an abort. */
  activeRollouts(): Promise<RolloutRecord[]>;
  /** Rollouts changed at or after `sinceMs` (finished ones included): what cache garbage collection counts as recent. */
  rolloutsUpdatedSince(sinceMs: number): Promise<RolloutRecord[]>;
  updateRollout(id: string, patch: RolloutPatch, nowMs: number): Promise<void>;
  /** Several hosts of one rollout, in one transaction. */
  updateRolloutHosts(id: string, patches: readonly { name: string; patch: RolloutHostPatch }[], nowMs: number): Promise<void>;
  findCompletedRollout(manifestDigest: string, environment: string): Promise<RolloutRecord | undefined>;
  addWindow(window: MaintenanceWindowRecord): Promise<void>;
  listWindows(): Promise<MaintenanceWindowRecord[]>;
  removeWindow(id: string): Promise<void>;
}

export type RolloutAction = "pause" | "resume" | "abort" | "promote";

/** An operator's action on a rollout, queued by a replica that does not drive rollouts for the one that does. */
export interface RolloutCommand {
  id: number;
  rolloutId: string;
  action: RolloutAction;
  reason: string;
  acceptFailingChecks: boolean;
  createdAtMs: number;
}

export type RolloutCommandState =
  { state: "pending" | "running" | "expired" } | { state: "done" } | { state: "failed"; errorCode: string; errorMessage: string };

export interface RolloutCommandQueue {
  queue(command: Omit<RolloutCommand, "id">): Promise<number>;
  /** Takes every pending command (pending → running), oldest first: only one caller gets each. */
  claim(): Promise<RolloutCommand[]>;
  finish(id: number, outcome: { errorCode: string; errorMessage: string } | undefined): Promise<void>;
  /** pending → expired, unless the leader took it already; returns whether it expired. */
  expire(id: number): Promise<boolean>;
  state(id: number): Promise<RolloutCommandState>;
  /** Deletes commands queued before `olderThanMs`; returns how many. */
  prune(olderThanMs: number): Promise<number>;
}
