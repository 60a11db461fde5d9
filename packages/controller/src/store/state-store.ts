import type { ActivationMode, HostPhase, SignedIntent } from "@ferry/protocol";
import type { AuditStore, TokenStore } from "./access-records.js";
import type { LedgerEntry } from "@ferry/core";
import type { BundleLedgerStore } from "./bundle-records.js";
import type { RolloutCommandQueue, RolloutHostState, RolloutStore } from "./rollout-records.js";

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
  /** What the host ran before its current system, as its reports showed; "" until it changed once. */
  previousSystem: string;
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
  /** The desired system is fetched now and activated when the host's maintenance window opens. */
  heldForWindow: boolean;
  /** From the last result for the desired serial: checks failing before and after the switch (not counted). */
  checksFailingBeforeAndAfter: string[];
  /** From the same result: how many checks judged the new system (0: none ran). */
  checksRun: number;
  /** The signed intent the desired system was recorded with, relayed to the host unchanged; undefined: unsigned. */
  desiredIntent: SignedIntent | undefined;
}

export interface DeploymentTarget {
  hostName: string;
  storePath: string;
  /** Fetch now, activate when a maintenance window opens (see releaseHeld). */
  heldForWindow?: boolean;
  /** Stored and relayed as given; the host checks it. */
  intent?: SignedIntent | undefined;
}

/** One host's new desired system, as the one write path (desired/) records it. */
export interface DesiredTarget {
  hostName: string;
  storePath: string;
  /** False: fetch only (a rollout's prefetch, or a deployment held for a maintenance window). */
  activate: boolean;
  /** Fetched now, activated when a maintenance window opens (releaseHeld). */
  heldForWindow: boolean;
  /** Stored and relayed as given; the host checks it. */
  intent: SignedIntent | undefined;
}

/** Desired systems written in one transaction: all of them or none. */
export interface DesiredWrite {
  /** The deployment's id; a rollout step uses the rollout's id. */
  deploymentId: string;
  mode: ActivationMode;
  targets: readonly DesiredTarget[];
  nowMs: number;
  /** Name of the token that asked for it. */
  requestedBy: string;
  /** A rollout step: each host's rollout row enters `state` with its new serial. Without it a deployment row is recorded. */
  rollout?: { id: string; state: RolloutHostState } | undefined;
  /** A bundle import that deploys: its ledger line, in the same transaction (E_BUNDLE_REPLAYED and nothing written if not newer). */
  bundle?: LedgerEntry | undefined;
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

/** How much deployment history the controller keeps. */
export interface HistoryRetention {
  /** Events older than this are deleted by the periodic prune. */
  maxAgeMs: number;
  /** Newest events kept per host; a host flooding results cannot grow the database past this. */
  eventsPerHost: number;
}

export const DEFAULT_HISTORY_RETENTION: HistoryRetention = { maxAgeMs: 30 * 86_400_000, eventsPerHost: 1000 };

export interface HostReportEntry {
  name: string;
  report: HostReport;
  /** Appended to the host's history in the same transaction. */
  event?: Omit<HostEvent, "hostName"> | undefined;
}

export interface HostEvent {
  atMs: number;
  hostName: string;
  kind: string;
  data: Record<string, unknown>;
}

/** Hosts changed after a change-clock value, and the value they are current to. */
export interface HostChanges {
  hosts: HostRecord[];
  /** Pass it to the next changesSince. */
  seq: number;
}

/**
 * The controller's durable state. Async so that the PostgreSQL backend can
 * implement the same contract; every method is atomic on its own.
 */
export interface StateStore {
  readonly rollouts: RolloutStore;
  readonly tokens: TokenStore;
  readonly audit: AuditStore;
  readonly bundles: BundleLedgerStore;
  /** Operator actions queued by replicas for the one that drives rollouts. */
  readonly commands: RolloutCommandQueue;
  addHost(name: string, tokenHash: string, tags: readonly string[], nowMs: number): Promise<HostRecord>;
  removeHost(name: string): Promise<void>;
  /** Replaces a host's agent token hash; E_UNKNOWN_HOST when there is no such host. */
  setHostToken(name: string, tokenHash: string): Promise<HostRecord>;
  getHost(name: string): Promise<HostRecord | undefined>;
  /** Every host when `names` is empty; E_UNKNOWN_HOST for a name not found. */
  listHosts(names?: readonly string[]): Promise<HostRecord[]>;
  /** Every host's name and last reported phase: what a metrics scrape needs, at a fifteenth of listHosts' cost (10,000 hosts: 4.7 against 68–90 ms). */
  listHostPhases(): Promise<Pick<HostRecord, "name" | "phase">[]>;
  /** At most `limit` hosts whose names sort after `name` ("" for the first), in name order. */
  listHostsAfter(name: string, limit: number): Promise<HostRecord[]>;
  /** The hosts of these names that exist, in no particular order. */
  findHosts(names: readonly string[]): Promise<HostRecord[]>;
  /**
   * The only writer of desired systems: every target gets a new serial, in
   * one transaction; E_UNKNOWN_HOST (and nothing written) when a host is missing.
   */
  assignDesired(write: DesiredWrite): Promise<HostRecord[]>;
  /** A new currentSystem moves the one it replaces to previousSystem. */
  recordReport(name: string, report: HostReport): Promise<HostRecord>;
  /**
   * Many agents' reports, and the events they carry (each host keeps at most
   * the store's per-host event count, oldest go first), in one transaction (one
   * sync to disk instead of one per report). Reports of hosts removed
   * meanwhile are dropped.
   */
  recordReports(entries: readonly HostReportEntry[]): Promise<void>;
  /** Hosts whose deployment waits for a maintenance window. */
  listHeld(): Promise<HostRecord[]>;
  /**
   * Turns a held deployment into an activation (new serial, activate), if the
   * host is still held for that same deployment; undefined when it is not.
   */
  releaseHeld(name: string, deploymentId: string): Promise<HostRecord | undefined>;
  /**
   * Raises the host's desired serial to at least `serial` without changing
   * what it should run: an agent that already applied serial N ignores
   * anything numbered N or below, which a rebuilt controller would send.
   */
  raiseSerialFloor(name: string, serial: number): Promise<HostRecord>;
  /** Deletes events recorded before `olderThanMs`; returns how many. */
  pruneEvents(olderThanMs: number): Promise<number>;
  /** The host's newest `limit` events, oldest first. */
  listEvents(hostName: string, limit: number): Promise<HostEvent[]>;
  /** The newest `limit` events of one kind over every host, newest first. */
  listEventsOfKind(kind: string, limit: number): Promise<HostEvent[]>;
  /**
   * Hosts whose desired system or reported state changed after `seq` (0:
   * every host ever changed): how a replica learns what another one
   * committed. Removed hosts are not listed.
   */
  changesSince(seq: number): Promise<HostChanges>;
  close(): Promise<void>;
}
