import type { ActivationMode, HostPhase } from "@ferry/protocol";
import type { RolloutStore } from "./rollout-records.js";

export interface HostRecord {
  name: string;
  tokenHash: string;
  tags: string[];
  createdAtMs: number;
  desiredSystem: string;
  desiredSerial: number;
  deploymentId: string;
  activationMode: ActivationMode;
  currentSystem: string;
  phase: HostPhase;
  appliedSerial: number;
  lastSeenMs: number;
  lastErrorCode: string;
  lastErrorMessage: string;
  lastErrorOutput: string;
  agentVersion: string;
  /** False while the desired system is only to be fetched (rollout prefetch). */
  desiredActivate: boolean;
  rolloutId: string;
  /** From the last result for the desired serial: checks failing before and after the switch (not counted). */
  checksFailingBeforeAndAfter: string[];
  /** From the same result: how many checks judged the new system (0: none ran). */
  checksRun: number;
}

export interface DeploymentTarget {
  hostName: string;
  storePath: string;
}

/** What an agent told us; only the given fields change. */
export type HostReport = Partial<
  Pick<
    HostRecord,
    | "currentSystem"
    | "phase"
    | "appliedSerial"
    | "lastSeenMs"
    | "lastErrorCode"
    | "lastErrorMessage"
    | "lastErrorOutput"
    | "agentVersion"
    | "checksFailingBeforeAndAfter"
    | "checksRun"
  >
>;

export interface HostEvent {
  atMs: number;
  hostName: string;
  kind: string;
  data: Record<string, unknown>;
}

/**
 * The controller's durable state. Async so that the PostgreSQL backend can
 * implement the same contract; every method is atomic on its own.
 */
export interface StateStore {
  readonly rollouts: RolloutStore;
  addHost(name: string, tokenHash: string, tags: readonly string[], nowMs: number): Promise<HostRecord>;
  removeHost(name: string): Promise<void>;
  getHost(name: string): Promise<HostRecord | undefined>;
  /** Every host when `names` is empty; E_UNKNOWN_HOST for a name not found. */
  listHosts(names?: readonly string[]): Promise<HostRecord[]>;
  /** Records a new desired system for each target in one transaction. */
  recordDeployment(deploymentId: string, targets: readonly DeploymentTarget[], mode: ActivationMode, nowMs: number): Promise<HostRecord[]>;
  recordReport(name: string, report: HostReport): Promise<HostRecord>;
  /**
   * Raises the host's desired serial to at least `serial` without changing
   * what it should run: an agent that already applied serial N ignores
   * anything numbered N or below, which a rebuilt controller would send.
   */
  raiseSerialFloor(name: string, serial: number): Promise<HostRecord>;
  appendEvent(event: HostEvent): Promise<void>;
  listEvents(hostName: string, limit: number): Promise<HostEvent[]>;
  close(): Promise<void>;
}
