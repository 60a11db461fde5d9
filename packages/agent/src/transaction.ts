import { join } from "node:path";
import { FerryError, toFerryError, type CommandRunner, type Logger, type Mode, type Nix } from "@ferry/core";
import { HostPhase, type ActivationResult } from "@ferry/protocol/agent-channel";
import type { AgentConfig } from "./config.js";
import { confirmNewSystem } from "./confirmation.js";
import { fetchClosure } from "./fetch-closure.js";
import { describeOutcomes, runHealthChecks } from "./health-checks.js";
import { afterFailure, onResume, recordedFailure, type Decision } from "./rollback-decision.js";
import { settingsOf, type AgentSettings } from "./settings.js";
import type { AgentState, StateFile, Transaction, TransactionPhase } from "./state-file.js";
import type { TransactionMetrics } from "./metrics-textfile.js";
import { describeHolder, SwitchLock } from "./switch-lock.js";
import { SystemSwitch } from "./system-switch.js";
import { readProfile, readSystemLink } from "./system-links.js";

export interface TransactionDeps {
  /** Compiled settings; given the file form instead, it is compiled once here. */
  config: AgentSettings | AgentConfig;
  nix: Nix;
  runner: CommandRunner;
  state: StateFile;
  log: Logger;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  progress: (serial: number, phase: HostPhase, message: string) => void;
  /** Round trip with the controller; undefined when applying without one. */
  heartbeat: ((timeoutMs: number) => Promise<boolean>) | undefined;
  /** Shared with dry-activate, so the agent never runs two switch scripts at once; absent, the transaction has its own. */
  switchLock?: SwitchLock;
  /** Test-only fault injection: called after each phase is persisted. */
  afterPersist?: (phase: TransactionPhase) => Promise<void>;
  /** Told of step durations, checks, rollbacks and results (the optional metrics textfile). */
  metrics?: TransactionMetrics | undefined;
}

export interface Desired {
  serial: number;
  storePath: string;
  deploymentId: string;
  strategy: Mode;
}

interface Outcome {
  success: boolean;
  phase: HostPhase;
  error?: FerryError;
  note?: string;
  checks?: Transaction["confirmedChecks"];
}

/** One phase's work: settles the transaction (a result), or moves it to its next phase and persists that. */
type Step = (transaction: Transaction) => Promise<ActivationResult | undefined>;

const HEARTBEAT_TIMEOUT_MS = 5000;
/** Phases whose write must succeed before their step runs; see persist(). */
const BEFORE_THE_SWITCH: ReadonlySet<TransactionPhase> = new Set(["fetching", "fetched", "activating"]);
const CONTROLLER_RETRY_MS = 1000;

/**
 * The activation transaction: fetch, switch, confirm, or roll back. Each phase
 * is persisted before its step runs, so a new process can tell what may have
 * happened and finish the job; a host is never left half-switched. A fresh
 * run and a resumed one go through the same steps; only where a resumed one
 * starts differs (rollback-decision.ts).
 */
export class ActivationTransaction {
  private readonly config: AgentSettings;
  private readonly switchLock: SwitchLock;
  private readonly system: SystemSwitch;
  private readonly steps: Record<TransactionPhase, Step>;

  constructor(private readonly deps: TransactionDeps) {
    this.config = settingsOf(deps.config);
    this.switchLock = deps.switchLock ?? new SwitchLock(this.config.switchLockFile);
    this.system = new SystemSwitch({ ...deps, config: this.config });
    this.steps = {
      fetching: (transaction) => this.fetch(transaction),
      fetched: (transaction) => this.checkBeforeSwitch(transaction),
      activating: (transaction) => this.switch(transaction),
      confirming: (transaction) => this.confirm(transaction),
      confirmed: (transaction) => this.makeBootDefault(transaction),
      "rolling-back": (transaction) => this.restorePrevious(transaction),
    };
  }

  currentSystem(): string {
    return readSystemLink(this.config.currentSystemLink);
  }

  async run(desired: Desired): Promise<ActivationResult> {
    const { log, now } = this.deps;
    const current = this.currentSystem();
    const profile = readProfile(this.config.profile);
    if (
      desired.strategy === "boot"
        ? profile === desired.storePath
        : current === desired.storePath && (desired.strategy === "test" || profile === desired.storePath)
    ) {
      log.info({ serial: desired.serial, storePath: desired.storePath }, "desired system already in place");
      return this.finish(desired, { success: true, phase: current === desired.storePath ? HostPhase.HOST_PHASE_ACTIVE : HostPhase.HOST_PHASE_BOOT_PENDING });
    }
    const release = await this.switchLock.acquire(`activating serial ${desired.serial}`);
    try {
      const transaction: Transaction = {
        serial: desired.serial,
        deploymentId: desired.deploymentId,
        next: desired.storePath,
        previous: current,
        strategy: desired.strategy,
        phase: "fetching",
        startedAtMs: now(),
        deadlineMs: 0,
        requireHeartbeat: this.deps.heartbeat !== undefined,
        failingBefore: [],
      };
      try {
        await this.persist(transaction);
      } catch (error) {
        const failure = toFerryError(error, "E_STATE_WRITE_FAILED");
        log.error({ serial: desired.serial, code: failure.code, err: failure.message }, "not started: the transaction could not be recorded");
        return this.finish(desired, { success: false, phase: HostPhase.HOST_PHASE_FAILED, error: failure });
      }
      return await this.advance(transaction);
    } finally {
      release();
    }
  }

  /**
   * Realises a closure ahead of its activation (a rollout's first phase).
   * Nothing is persisted: fetching again after a crash is harmless.
   */
  async prefetch(desired: { serial: number; storePath: string }): Promise<ActivationResult> {
    const { log, progress } = this.deps;
    progress(desired.serial, HostPhase.HOST_PHASE_FETCHING, `prefetching ${desired.storePath}`);
    try {
      const bytes = await fetchClosure({ ...this.deps, config: this.config }, desired.storePath, "prefetched");
      if (bytes !== undefined) this.deps.metrics?.fetched(bytes);
    } catch (error) {
      const failure = toFerryError(error, "E_FETCH_FAILED");
      log.error({ serial: desired.serial, code: failure.code, err: failure.message }, "prefetch failed");
      return this.finish(desired, { success: false, phase: HostPhase.HOST_PHASE_FAILED, error: failure });
    }
    log.info({ serial: desired.serial, storePath: desired.storePath }, "closure prefetched");
    return this.finish(desired, { success: true, phase: HostPhase.HOST_PHASE_FETCHED });
  }

  /** Finishes a transaction a previous agent process (or boot) left open. */
  async resume(): Promise<ActivationResult | undefined> {
    const stored = this.deps.state.state.transaction;
    if (!stored) return undefined;
    const release = await this.switchLock.acquire(`resuming serial ${stored.serial}`);
    try {
      const transaction = structuredClone(stored);
      this.deps.log.warn(
        { serial: transaction.serial, phase: transaction.phase, next: transaction.next, previous: transaction.previous },
        "resuming an interrupted activation",
      );
      if (transaction.phase === "activating") await this.system.waitForOrphan(transaction);
      return await this.follow(transaction, onResume(transaction, { now: this.deps.now(), currentSystem: this.currentSystem() }));
    } finally {
      release();
    }
  }

  /** Records a desired system refused before anything was tried (e.g. a malformed path). */
  refuse(serial: number, error: FerryError): ActivationResult {
    return this.finish({ serial, storePath: "" }, { success: false, phase: HostPhase.HOST_PHASE_FAILED, error });
  }

  /** Runs one step per phase until one of them settles the transaction. */
  private async advance(transaction: Transaction): Promise<ActivationResult> {
    for (;;) {
      const phase = transaction.phase;
      let result: ActivationResult | undefined;
      const started = this.deps.now();
      try {
        result = await this.steps[phase](transaction);
      } catch (error) {
        return this.follow(transaction, afterFailure(phase, error));
      } finally {
        this.deps.metrics?.phaseDone(phase, (this.deps.now() - started) / 1000);
      }
      if (result) return result;
      if (transaction.phase === phase) throw new FerryError("E_INTERNAL", `the ${phase} step neither settled the transaction nor moved it on`);
    }
  }

  private async follow(transaction: Transaction, decision: Decision): Promise<ActivationResult> {
    switch (decision.kind) {
      case "continue":
        transaction.phase = decision.from;
        return this.advance(transaction);
      case "roll-back":
        return this.rollBack(transaction, decision.failure);
      case "stop":
        this.deps.log.error({ serial: transaction.serial, code: decision.failure.code, err: decision.failure.message }, decision.why);
        return this.close(transaction, { success: false, phase: HostPhase.HOST_PHASE_FAILED, error: decision.failure }, decision.keepNext);
    }
  }

  private async fetch(transaction: Transaction): Promise<undefined> {
    this.deps.progress(transaction.serial, HostPhase.HOST_PHASE_FETCHING, `fetching ${transaction.next}`);
    const bytes = await fetchClosure({ ...this.deps, config: this.config }, transaction.next, "next");
    if (bytes !== undefined) this.deps.metrics?.fetched(bytes);
    transaction.phase = "fetched";
    await this.persist(transaction);
    return undefined;
  }

  /** The last look before the switch: the baseline of the health checks, the controller, the lock. */
  private async checkBeforeSwitch(transaction: Transaction): Promise<undefined> {
    const { config } = this;
    const { log, now } = this.deps;
    const outcomes = await runHealthChecks(config.healthChecks, this.deps.runner);
    this.deps.metrics?.healthChecks("before-switch", outcomes);
    transaction.failingBefore = outcomes.filter((outcome) => !outcome.passed).map((outcome) => outcome.name);
    if (transaction.failingBefore.length > 0)
      log.warn({ serial: transaction.serial, failingBefore: transaction.failingBefore }, "checks already failing before the switch; they count only if strict");
    if (transaction.requireHeartbeat && !(await this.controllerReachable())) {
      // Our choice: never switch a host that cannot reach the controller, so the heartbeat can judge it.
      throw new FerryError("E_CONTROLLER_UNREACHABLE", "not switched: the controller was unreachable just before the switch");
    }
    const holder = this.switchLock.outsideHolder();
    if (holder) throw new FerryError("E_SWITCH_LOCKED", `not switched: ${describeHolder(config.switchLockFile, holder)}`);
    transaction.phase = "activating";
    // The switch may take activationTimeout, then the new system has confirmTimeout to prove itself.
    transaction.deadlineMs = now() + config.activationTimeoutMs + config.confirmTimeoutMs;
    await this.persist(transaction);
    return undefined;
  }

  private async switch(transaction: Transaction): Promise<ActivationResult | undefined> {
    const { log, now } = this.deps;
    this.deps.progress(transaction.serial, HostPhase.HOST_PHASE_ACTIVATING, `${transaction.strategy}: switching to ${transaction.next}`);
    await this.system.activate(transaction);
    if (transaction.strategy === "boot") {
      log.info({ serial: transaction.serial, storePath: transaction.next }, "installed as the boot default; it runs after the next reboot");
      return this.close(transaction, { success: true, phase: HostPhase.HOST_PHASE_BOOT_PENDING }, true);
    }
    transaction.phase = "confirming";
    // A switch re-run after a restart does not extend the deadline set before the first one.
    transaction.deadlineMs = Math.min(transaction.deadlineMs, now() + this.config.confirmTimeoutMs);
    delete transaction.switchProcess;
    await this.persist(transaction);
    return undefined;
  }

  private async confirm(transaction: Transaction): Promise<undefined> {
    const { log, now, sleep, heartbeat, runner } = this.deps;
    this.deps.progress(transaction.serial, HostPhase.HOST_PHASE_CONFIRMING, `confirming until ${new Date(transaction.deadlineMs).toISOString()}`);
    const confirmation = await confirmNewSystem(
      { checks: this.config.healthChecks, runner, log, now, sleep, heartbeat, onChecks: (outcomes) => this.deps.metrics?.healthChecks("confirm", outcomes) },
      transaction.deadlineMs,
      transaction.failingBefore,
      transaction.requireHeartbeat,
    );
    log.info({ serial: transaction.serial, checks: confirmation.report || undefined }, "new system confirmed");
    transaction.confirmedChecks = { run: confirmation.checksRun, failingBeforeAndAfter: confirmation.failingBeforeAndAfter };
    if (confirmation.failingBeforeAndAfter.length > 0) {
      log.warn(
        { serial: transaction.serial, failingBeforeAndAfter: confirmation.failingBeforeAndAfter, checksRun: confirmation.checksRun },
        `checks failing before and after the switch (not counted, so they prove nothing): ${confirmation.failingBeforeAndAfter.join(", ")}`,
      );
    }
    transaction.phase = "confirmed";
    await this.persist(transaction);
    return undefined;
  }

  /** Confirmed: a trial makes the new system the boot default only now. */
  private async makeBootDefault(transaction: Transaction): Promise<ActivationResult> {
    if (transaction.strategy === "trial") await this.system.makeBootDefault(transaction.next);
    this.deps.log.info({ serial: transaction.serial, storePath: transaction.next }, "new system active and confirmed");
    return this.close(transaction, { success: true, phase: HostPhase.HOST_PHASE_ACTIVE, checks: transaction.confirmedChecks }, true);
  }

  private async rollBack(transaction: Transaction, failure: FerryError): Promise<ActivationResult> {
    this.deps.log.error(
      { serial: transaction.serial, code: failure.code, err: failure.message, previous: transaction.previous },
      "activation failed; rolling back",
    );
    this.deps.metrics?.rolledBack(failure.code);
    transaction.phase = "rolling-back";
    transaction.failure = { code: failure.code, message: failure.message, output: failure.output.slice(-16384) };
    await this.persist(transaction);
    return this.advance(transaction);
  }

  private async restorePrevious(transaction: Transaction): Promise<ActivationResult> {
    const { config } = this;
    const { log } = this.deps;
    const failure = recordedFailure(transaction);
    if (transaction.previous === "") {
      return this.close(transaction, { success: false, phase: HostPhase.HOST_PHASE_FAILED, error: failure, note: "there is no previous system to return to" });
    }
    this.deps.progress(transaction.serial, HostPhase.HOST_PHASE_ROLLING_BACK, `restoring ${transaction.previous}`);
    let after = "";
    try {
      await this.system.restore(transaction.previous);
      const outcomes = await runHealthChecks(config.healthChecks, this.deps.runner);
      this.deps.metrics?.healthChecks("after-rollback", outcomes);
      after = describeOutcomes(outcomes);
    } catch (error) {
      const rollbackError = toFerryError(error, "E_ROLLBACK_FAILED");
      log.fatal({ serial: transaction.serial, code: rollbackError.code, err: rollbackError.message }, "rollback failed: the host needs an operator");
      const combined = new FerryError("E_ROLLBACK_FAILED", `${failure.code}: ${failure.message}; then the rollback failed: ${rollbackError.message}`, {
        output: `${failure.output}\n--- rollback ---\n${rollbackError.output}`,
      });
      return this.close(transaction, { success: false, phase: HostPhase.HOST_PHASE_FAILED, error: combined });
    }
    log.warn({ serial: transaction.serial, previous: transaction.previous, code: failure.code }, "previous system restored");
    const withChecks = after
      ? new FerryError(failure.code, failure.message, { output: `${failure.output}\n--- checks after rollback ---\n${after}`.trim() })
      : failure;
    return this.close(transaction, { success: false, phase: HostPhase.HOST_PHASE_ROLLED_BACK, error: withChecks });
  }

  /**
   * Records the transaction's phase. Until the switch, a phase that cannot be
   * written stops the transaction (its step must not run unrecorded). From
   * the switch on, a full disk must not stop the agent from finishing,
   * confirming or rolling back: what it cannot write yet it keeps in memory
   * and writes as soon as it can, and the phase left on disk still leads a
   * restarted agent to the same end (rollback-decision.ts).
   */
  private async persist(transaction: Transaction): Promise<void> {
    const change = (draft: AgentState): void => {
      draft.transaction = structuredClone(transaction);
    };
    if (BEFORE_THE_SWITCH.has(transaction.phase)) this.deps.state.update(change);
    else this.deps.state.record(change);
    await this.deps.afterPersist?.(transaction.phase);
  }

  /** At least one round trip attempt, then more until preSwitchControllerWait has passed. */
  private async controllerReachable(): Promise<boolean> {
    const { heartbeat, now, sleep } = this.deps;
    if (!heartbeat) return true;
    const deadline = now() + this.config.preSwitchControllerWaitMs;
    for (;;) {
      if (await heartbeat(HEARTBEAT_TIMEOUT_MS)) return true;
      if (now() >= deadline) return false;
      await sleep(CONTROLLER_RETRY_MS);
    }
  }

  /** Records the outcome, drops the transaction and keeps GC roots for what runs now. */
  private async close(transaction: Transaction, outcome: Outcome, keepNextAlive = false): Promise<ActivationResult> {
    if (keepNextAlive) await this.updateGcRoots(transaction.next, transaction.previous);
    this.deps.state.record((draft) => {
      draft.transaction = null;
    });
    return this.finish({ serial: transaction.serial, storePath: transaction.next }, outcome);
  }

  private async updateGcRoots(current: string, previous: string): Promise<void> {
    const roots = join(this.config.stateDir, "gcroots");
    try {
      await this.deps.nix.addGcRoot(current, join(roots, "current"));
      if (previous) await this.deps.nix.addGcRoot(previous, join(roots, "previous"));
    } catch (error) {
      this.deps.log.warn({ err: (error as Error).message }, "could not update GC roots");
    }
  }

  private finish(desired: { serial: number; storePath: string }, outcome: Outcome): ActivationResult {
    const result: ActivationResult = {
      hostName: this.config.hostName,
      serial: desired.serial,
      storePath: desired.storePath,
      success: outcome.success,
      phase: outcome.phase,
      errorCode: outcome.error?.code ?? "",
      errorMessage: [outcome.error?.message, outcome.note].filter(Boolean).join("; "),
      output: outcome.error?.output.slice(-16384) ?? "",
      currentSystem: this.currentSystem(),
      finishedAtMs: this.deps.now(),
      checksFailingBeforeAndAfter: outcome.checks?.failingBeforeAndAfter ?? [],
      checksRun: outcome.checks?.run ?? 0,
    };
    this.deps.state.record((draft) => {
      draft.appliedSerial = Math.max(draft.appliedSerial, desired.serial);
      draft.lastResult = result;
    });
    this.deps.metrics?.settled(result);
    return result;
  }
}
