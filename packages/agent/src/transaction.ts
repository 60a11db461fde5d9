import { join } from "node:path";
import { FerryError, toFerryError, type CommandRunner, type ErrorCode, type Logger, type Mode, type Nix } from "@ferry/core";
import { HostPhase, type ActivationResult } from "@ferry/protocol";
import type { AgentConfig } from "./config.js";
import { confirmNewSystem } from "./confirmation.js";
import { fetchClosure } from "./fetch-closure.js";
import { describeOutcomes, runHealthChecks } from "./health-checks.js";
import { isSameProcessAlive, processStartTicks } from "./process-identity.js";
import type { StateFile, Transaction, TransactionPhase } from "./state-file.js";
import { switchLockHolder } from "./switch-lock.js";
import { readProfile, readSystemLink } from "./system-links.js";

export interface TransactionDeps {
  config: AgentConfig;
  nix: Nix;
  runner: CommandRunner;
  state: StateFile;
  log: Logger;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  progress: (serial: number, phase: HostPhase, message: string) => void;
  /** Round trip with the controller; undefined when applying without one. */
  heartbeat: ((timeoutMs: number) => Promise<boolean>) | undefined;
  /** Test-only fault injection: called after each phase is persisted. */
  afterPersist?: (phase: TransactionPhase) => Promise<void>;
}

export interface Desired {
  serial: number;
  storePath: string;
  deploymentId: string;
  strategy: Mode;
}

/**
 * The activation transaction: fetch, switch, confirm, or roll back. Each phase
 * is persisted before its step runs, so resume() can always tell what may
 * have happened and finish the job; a host is never left half-switched.
 */
export class ActivationTransaction {
  constructor(private readonly deps: TransactionDeps) {}

  currentSystem(): string {
    return readSystemLink(this.deps.config.currentSystemLink);
  }

  async run(desired: Desired): Promise<ActivationResult> {
    const { config, log, now } = this.deps;
    const current = this.currentSystem();
    const profile = readProfile(config.profile);
    if (
      desired.strategy === "boot"
        ? profile === desired.storePath
        : current === desired.storePath && (desired.strategy === "test" || profile === desired.storePath)
    ) {
      log.info({ serial: desired.serial, storePath: desired.storePath }, "desired system already in place");
      return this.finish(desired, { success: true, phase: current === desired.storePath ? HostPhase.HOST_PHASE_ACTIVE : HostPhase.HOST_PHASE_BOOT_PENDING });
    }
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
    await this.persist(transaction);
    return this.drive(transaction);
  }

  /**
   * Realises a closure ahead of its activation (a rollout's first phase).
   * Nothing is persisted: fetching again after a crash is harmless.
   */
  async prefetch(desired: { serial: number; storePath: string }): Promise<ActivationResult> {
    const { log, progress } = this.deps;
    progress(desired.serial, HostPhase.HOST_PHASE_FETCHING, `prefetching ${desired.storePath}`);
    try {
      await fetchClosure(this.deps, desired.storePath, "prefetched");
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
    const transaction = structuredClone(stored);
    const { log, now } = this.deps;
    log.warn(
      { serial: transaction.serial, phase: transaction.phase, next: transaction.next, previous: transaction.previous },
      "resuming an interrupted activation",
    );
    switch (transaction.phase) {
      case "fetching":
      case "fetched":
        return this.drive({ ...transaction, phase: "fetching" });
      case "activating": {
        await this.waitForOrphanedSwitch(transaction);
        if (this.currentSystem() !== transaction.next) {
          return this.rollBack(transaction, new FerryError("E_INTERRUPTED", "the agent stopped while switching; the new system did not come up"));
        }
        // NixOS points /run/current-system at the new system early in activation, so
        // a moved link does not prove the switch finished: run it again (it is
        // idempotent) and judge by its exit status.
        try {
          await this.switchTo(transaction);
        } catch (error) {
          return this.rollBack(transaction, toFerryError(error, "E_ACTIVATION_FAILED"));
        }
        if (transaction.strategy === "boot") return this.close(transaction, { success: true, phase: HostPhase.HOST_PHASE_BOOT_PENDING }, true);
        delete transaction.switchProcess;
        return this.drive(
          { ...transaction, phase: "confirming", deadlineMs: Math.min(transaction.deadlineMs, now() + this.deps.config.confirmTimeout * 1000) },
          true,
        );
      }
      case "confirming":
        if (now() >= transaction.deadlineMs) {
          return this.rollBack(transaction, new FerryError("E_CONFIRM_TIMEOUT", "the confirmation deadline passed while the agent was down"));
        }
        if (this.currentSystem() !== transaction.next) {
          return this.rollBack(transaction, new FerryError("E_INTERRUPTED", "the host is no longer running the new system (rebooted before confirmation?)"));
        }
        return this.drive(transaction, true);
      case "confirmed":
        return this.drive(transaction, true);
      case "rolling-back":
        return this.rollBack(
          transaction,
          new FerryError((transaction.failure?.code ?? "E_INTERRUPTED") as ErrorCode, transaction.failure?.message ?? "rollback interrupted", {
            output: transaction.failure?.output ?? "",
          }),
        );
    }
  }

  private async persist(transaction: Transaction): Promise<void> {
    this.deps.state.update((draft) => {
      draft.transaction = structuredClone(transaction);
    });
    await this.deps.afterPersist?.(transaction.phase);
  }

  private async drive(transaction: Transaction, resumed = false): Promise<ActivationResult> {
    const { config, nix, log, progress, now } = this.deps;
    const serial = transaction.serial;
    if (transaction.phase === "fetching") {
      progress(serial, HostPhase.HOST_PHASE_FETCHING, `fetching ${transaction.next}`);
      try {
        await fetchClosure(this.deps, transaction.next, "next");
      } catch (error) {
        const failure = toFerryError(error, "E_FETCH_FAILED");
        log.error({ serial, code: failure.code, err: failure.message }, "fetch failed; the running system is untouched");
        return this.close(transaction, { success: false, phase: HostPhase.HOST_PHASE_FAILED, error: failure });
      }
      transaction.phase = "fetched";
      await this.persist(transaction);
    }
    if (transaction.phase === "fetched") {
      const outcomes = await runHealthChecks(config.healthChecks, this.deps.runner);
      transaction.failingBefore = outcomes.filter((outcome) => !outcome.passed).map((outcome) => outcome.name);
      if (transaction.failingBefore.length > 0)
        log.warn({ serial, failingBefore: transaction.failingBefore }, "checks already failing before the switch; they count only if strict");
      if (transaction.requireHeartbeat && !(await this.controllerReachable())) {
        // Our choice: never switch a host that cannot reach the controller, so the heartbeat can judge it.
        return this.close(transaction, {
          success: false,
          phase: HostPhase.HOST_PHASE_FAILED,
          error: new FerryError("E_CONTROLLER_UNREACHABLE", "not switched: the controller was unreachable just before the switch"),
        });
      }
      const holder = switchLockHolder(config.switchLockFile);
      if (holder) {
        return this.close(transaction, {
          success: false,
          phase: HostPhase.HOST_PHASE_FAILED,
          error: new FerryError("E_SWITCH_LOCKED", `not switched: ${config.switchLockFile} is held by pid ${holder.pid} (${holder.command || "unknown"})`),
        });
      }
      transaction.phase = "activating";
      transaction.deadlineMs = now() + (config.activationTimeout + config.confirmTimeout) * 1000;
      await this.persist(transaction);
      progress(serial, HostPhase.HOST_PHASE_ACTIVATING, `${transaction.strategy}: switching to ${transaction.next}`);
      try {
        await this.switchTo(transaction);
      } catch (error) {
        return this.rollBack(transaction, toFerryError(error, "E_ACTIVATION_FAILED"));
      }
      if (transaction.strategy === "boot") {
        log.info({ serial, storePath: transaction.next }, "installed as the boot default; it runs after the next reboot");
        return this.close(transaction, { success: true, phase: HostPhase.HOST_PHASE_BOOT_PENDING }, true);
      }
      transaction.phase = "confirming";
      transaction.deadlineMs = now() + config.confirmTimeout * 1000;
      delete transaction.switchProcess;
      await this.persist(transaction);
    }
    if (transaction.phase === "confirming") {
      progress(serial, HostPhase.HOST_PHASE_CONFIRMING, `confirming until ${new Date(transaction.deadlineMs).toISOString()}`);
      try {
        const confirmation = await confirmNewSystem(
          { checks: config.healthChecks, runner: this.deps.runner, log, now, sleep: this.deps.sleep, heartbeat: this.deps.heartbeat },
          transaction.deadlineMs,
          transaction.failingBefore,
          transaction.requireHeartbeat,
        );
        log.info({ serial, resumed, checks: confirmation.report || undefined }, "new system confirmed");
        transaction.confirmedChecks = { run: confirmation.checksRun, failingBeforeAndAfter: confirmation.failingBeforeAndAfter };
        if (confirmation.failingBeforeAndAfter.length > 0) {
          log.warn(
            { serial, failingBeforeAndAfter: confirmation.failingBeforeAndAfter, checksRun: confirmation.checksRun },
            `checks failing before and after the switch (not counted, so they prove nothing): ${confirmation.failingBeforeAndAfter.join(", ")}`,
          );
        }
      } catch (error) {
        return this.rollBack(transaction, toFerryError(error, "E_CONFIRM_TIMEOUT"));
      }
      transaction.phase = "confirmed";
      await this.persist(transaction);
    }
    // confirmed: make the new system the boot default where the strategy left it out.
    try {
      if (transaction.strategy === "trial") {
        if (readProfile(config.profile) !== transaction.next) await nix.setProfile(config.profile, transaction.next);
        await nix.switchToConfiguration(transaction.next, "boot", config.activationTimeout * 1000);
      }
    } catch (error) {
      // The new system runs and is healthy; only the boot entry failed. Rolling back now would hurt more than it helps.
      const failure = toFerryError(error, "E_ACTIVATION_FAILED");
      log.error({ serial, code: failure.code, err: failure.message }, "confirmed, but installing the boot entry failed");
      return this.close(transaction, { success: false, phase: HostPhase.HOST_PHASE_FAILED, error: failure }, true);
    }
    log.info({ serial, storePath: transaction.next }, "new system active and confirmed");
    return this.close(transaction, { success: true, phase: HostPhase.HOST_PHASE_ACTIVE, checks: transaction.confirmedChecks }, true);
  }

  private async controllerReachable(): Promise<boolean> {
    const heartbeat = this.deps.heartbeat;
    if (!heartbeat) return true;
    const deadline = this.deps.now() + this.deps.config.confirmTimeout * 1000;
    while (this.deps.now() < deadline) {
      if (await heartbeat(5000)) return true;
      await this.deps.sleep(1000);
    }
    return false;
  }

  private async switchTo(transaction: Transaction): Promise<void> {
    const { config, nix } = this.deps;
    const timeoutMs = config.activationTimeout * 1000;
    const recordPid = (pid: number): void => {
      const startTicks = processStartTicks(pid);
      if (startTicks === undefined) return;
      transaction.switchProcess = { pid, startTicks };
      this.deps.state.update((draft) => {
        if (draft.transaction) draft.transaction.switchProcess = { pid, startTicks };
      });
    };
    switch (transaction.strategy) {
      case "trial":
      case "test":
        await nix.switchToConfiguration(transaction.next, "test", timeoutMs, recordPid);
        return;
      case "switch":
        await nix.setProfile(config.profile, transaction.next);
        await nix.switchToConfiguration(transaction.next, "switch", timeoutMs, recordPid);
        return;
      case "boot":
        await nix.setProfile(config.profile, transaction.next);
        await nix.switchToConfiguration(transaction.next, "boot", timeoutMs, recordPid);
        return;
    }
  }

  /**
   * A switch started by an earlier agent process may still be running (the
   * unit's KillMode spares it). Wait for it, but not past the deadline: a
   * switch that hangs is killed, never waited on forever.
   */
  private async waitForOrphanedSwitch(transaction: Transaction): Promise<void> {
    const orphan = transaction.switchProcess;
    if (!orphan || !isSameProcessAlive(orphan)) return;
    const { log, now, sleep } = this.deps;
    log.warn({ pid: orphan.pid }, "a switch-to-configuration from before the restart is still running; waiting for it");
    while (isSameProcessAlive(orphan) && now() < transaction.deadlineMs) await sleep(500);
    if (isSameProcessAlive(orphan)) {
      log.error({ pid: orphan.pid }, "the orphaned switch-to-configuration outlived its deadline; killing it");
      try {
        process.kill(-orphan.pid, "SIGKILL");
      } catch {
        process.kill(orphan.pid, "SIGKILL");
      }
    }
  }

  private async rollBack(transaction: Transaction, failure: FerryError): Promise<ActivationResult> {
    const { config, nix, log, progress } = this.deps;
    const serial = transaction.serial;
    log.error({ serial, code: failure.code, err: failure.message, previous: transaction.previous }, "activation failed; rolling back");
    transaction.phase = "rolling-back";
    transaction.failure = { code: failure.code, message: failure.message, output: failure.output.slice(-16384) };
    await this.persist(transaction);
    if (transaction.previous === "") {
      return this.close(transaction, { success: false, phase: HostPhase.HOST_PHASE_FAILED, error: failure, note: "there is no previous system to return to" });
    }
    progress(serial, HostPhase.HOST_PHASE_ROLLING_BACK, `restoring ${transaction.previous}`);
    let after = "";
    try {
      if (readProfile(config.profile) !== transaction.previous) await nix.setProfile(config.profile, transaction.previous);
      await nix.switchToConfiguration(transaction.previous, "switch", config.activationTimeout * 1000);
      after = describeOutcomes(await runHealthChecks(config.healthChecks, this.deps.runner));
    } catch (error) {
      const rollbackError = toFerryError(error, "E_ROLLBACK_FAILED");
      log.fatal({ serial, code: rollbackError.code, err: rollbackError.message }, "rollback failed: the host needs an operator");
      const combined = new FerryError("E_ROLLBACK_FAILED", `${failure.code}: ${failure.message}; then the rollback failed: ${rollbackError.message}`, {
        output: `${failure.output}\n--- rollback ---\n${rollbackError.output}`,
      });
      return this.close(transaction, { success: false, phase: HostPhase.HOST_PHASE_FAILED, error: combined });
    }
    log.warn({ serial, previous: transaction.previous, code: failure.code }, "previous system restored");
    const withChecks = after
      ? new FerryError(failure.code, failure.message, { output: `${failure.output}\n--- checks after rollback ---\n${after}`.trim() })
      : failure;
    return this.close(transaction, { success: false, phase: HostPhase.HOST_PHASE_ROLLED_BACK, error: withChecks });
  }

  /** Records the outcome, drops the transaction and keeps GC roots for what runs now. */
  private async close(transaction: Transaction, outcome: Outcome, keepNextAlive = false): Promise<ActivationResult> {
    if (keepNextAlive) await this.updateGcRoots(transaction.next, transaction.previous);
    this.deps.state.update((draft) => {
      draft.transaction = null;
    });
    return this.finish({ serial: transaction.serial, storePath: transaction.next }, outcome);
  }

  private async updateGcRoots(current: string, previous: string): Promise<void> {
    const roots = join(this.deps.config.stateDir, "gcroots");
    try {
      await this.deps.nix.addGcRoot(current, join(roots, "current"));
      if (previous) await this.deps.nix.addGcRoot(previous, join(roots, "previous"));
    } catch (error) {
      this.deps.log.warn({ err: (error as Error).message }, "could not update GC roots");
    }
  }

  /** Records a desired system refused before anything was tried (e.g. a malformed path). */
  refuse(serial: number, error: FerryError): ActivationResult {
    return this.finish({ serial, storePath: "" }, { success: false, phase: HostPhase.HOST_PHASE_FAILED, error });
  }

  private finish(desired: { serial: number; storePath: string }, outcome: Outcome): ActivationResult {
    const result: ActivationResult = {
      hostName: this.deps.config.hostName,
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
    this.deps.state.update((draft) => {
      draft.appliedSerial = Math.max(draft.appliedSerial, desired.serial);
      draft.lastResult = result;
    });
    return result;
  }
}

interface Outcome {
  success: boolean;
  phase: HostPhase;
  error?: FerryError;
  note?: string;
  checks?: Transaction["confirmedChecks"];
}
