import { join } from "node:path";
import { FerryError, toFerryError, type Logger, type Nix } from "@ferry/core";
import { HostPhase, type ActivationResult } from "@ferry/protocol";
import type { AgentConfig } from "./config.js";
import type { StateFile, Transaction } from "./state-file.js";
import { readProfile, readSystemLink } from "./system-links.js";

export interface ActivationDeps {
  config: AgentConfig;
  nix: Nix;
  state: StateFile;
  log: Logger;
  now: () => number;
  progress: (serial: number, phase: HostPhase, message: string) => void;
}

export interface Desired {
  serial: number;
  storePath: string;
  deploymentId: string;
}

/**
 * Runs one activation transaction to its end and returns the result to
 * report. Every phase is persisted before its step runs, so a restarted agent
 * knows exactly what may have happened (see resume()).
 */
export class Activation {
  constructor(private readonly deps: ActivationDeps) {}

  private get gcRootDir(): string {
    return join(this.deps.config.stateDir, "gcroots");
  }

  currentSystem(): string {
    return readSystemLink(this.deps.config.currentSystemLink);
  }

  async run(desired: Desired): Promise<ActivationResult> {
    const { state, log, now, config } = this.deps;
    const previous = this.currentSystem();
    if (previous === desired.storePath && readProfile(config.profile) === desired.storePath) {
      log.info({ serial: desired.serial, storePath: desired.storePath }, "desired system already running");
      return this.finish(desired, { success: true, phase: HostPhase.HOST_PHASE_ACTIVE });
    }
    state.update((draft) => {
      draft.transaction = {
        serial: desired.serial,
        deploymentId: desired.deploymentId,
        next: desired.storePath,
        previous,
        phase: "fetching",
        startedAtMs: now(),
        deadlineMs: 0,
      };
    });
    return this.continueFrom(state.state.transaction as Transaction);
  }

  /** Picks up a transaction a previous agent process left unfinished. */
  async resume(): Promise<ActivationResult | undefined> {
    const transaction = this.deps.state.state.transaction;
    if (!transaction) return undefined;
    this.deps.log.warn({ serial: transaction.serial, phase: transaction.phase, next: transaction.next }, "resuming an interrupted activation");
    if (transaction.phase === "activating") {
      // The switch may have been cut half-way: the only safe ground is the previous system.
      return this.rollBack(transaction, new FerryError("E_ACTIVATION_FAILED", "the agent was interrupted while switching; restoring the previous system"));
    }
    return this.continueFrom(transaction);
  }

  private async continueFrom(transaction: Transaction): Promise<ActivationResult> {
    const { config, nix, state, log, progress } = this.deps;
    const desired = { serial: transaction.serial, storePath: transaction.next, deploymentId: transaction.deploymentId };
    if (transaction.phase === "rolling-back") {
      return this.rollBack(transaction, new FerryError((transaction.failure?.code ?? "E_ACTIVATION_FAILED") as "E_ACTIVATION_FAILED", transaction.failure?.message ?? "rollback interrupted"));
    }
    if (transaction.phase === "fetching") {
      progress(transaction.serial, HostPhase.HOST_PHASE_FETCHING, `fetching ${transaction.next}`);
      try {
        await nix.realise(transaction.next, {
          substituters: config.substituters,
          trustedPublicKeys: config.trustedPublicKeys,
          gcRoot: join(this.gcRootDir, "next"),
          timeoutMs: config.fetchTimeout * 1000,
        });
      } catch (error) {
        const failure = toFerryError(error, "E_FETCH_FAILED");
        log.error({ serial: transaction.serial, code: failure.code, err: failure.message }, "fetch failed; the running system is untouched");
        state.update((draft) => {
          draft.transaction = null;
        });
        return this.finish(desired, { success: false, phase: HostPhase.HOST_PHASE_FAILED, error: failure });
      }
      state.update((draft) => {
        if (draft.transaction) draft.transaction.phase = "activating";
      });
    }
    progress(transaction.serial, HostPhase.HOST_PHASE_ACTIVATING, `switching to ${transaction.next}`);
    try {
      await nix.setProfile(config.profile, transaction.next);
      const output = await nix.switchToConfiguration(transaction.next, "switch", config.activationTimeout * 1000);
      log.info({ serial: transaction.serial, output: output.slice(-2000) }, "switch-to-configuration succeeded");
    } catch (error) {
      return this.rollBack(transaction, toFerryError(error, "E_ACTIVATION_FAILED"));
    }
    state.update((draft) => {
      draft.transaction = null;
    });
    log.info({ serial: transaction.serial, storePath: transaction.next }, "new system active");
    return this.finish(desired, { success: true, phase: HostPhase.HOST_PHASE_ACTIVE });
  }

  private async rollBack(transaction: Transaction, failure: FerryError): Promise<ActivationResult> {
    const { config, nix, state, log, progress } = this.deps;
    const desired = { serial: transaction.serial, storePath: transaction.next, deploymentId: transaction.deploymentId };
    log.error({ serial: transaction.serial, code: failure.code, err: failure.message, previous: transaction.previous }, "activation failed; rolling back");
    state.update((draft) => {
      if (draft.transaction) {
        draft.transaction.phase = "rolling-back";
        draft.transaction.failure = { code: failure.code, message: failure.message, output: failure.output.slice(-16384) };
      }
    });
    if (transaction.previous === "") {
      state.update((draft) => {
        draft.transaction = null;
      });
      return this.finish(desired, { success: false, phase: HostPhase.HOST_PHASE_FAILED, error: failure, note: "no previous system to return to" });
    }
    progress(transaction.serial, HostPhase.HOST_PHASE_ROLLING_BACK, `restoring ${transaction.previous}`);
    let rollbackError: FerryError | undefined;
    try {
      await nix.setProfile(config.profile, transaction.previous);
      await nix.switchToConfiguration(transaction.previous, "switch", config.activationTimeout * 1000);
    } catch (error) {
      rollbackError = toFerryError(error, "E_ACTIVATION_FAILED");
      log.fatal({ serial: transaction.serial, code: rollbackError.code, err: rollbackError.message }, "rollback failed: the host needs an operator");
    }
    state.update((draft) => {
      draft.transaction = null;
    });
    return this.finish(desired, {
      success: false,
      phase: rollbackError ? HostPhase.HOST_PHASE_FAILED : HostPhase.HOST_PHASE_ROLLED_BACK,
      error: failure,
      ...(rollbackError ? { note: `rollback failed too: ${rollbackError.message}` } : {}),
    });
  }

  private finish(desired: Desired, outcome: { success: boolean; phase: HostPhase; error?: FerryError; note?: string }): ActivationResult {
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
    };
    this.deps.state.update((draft) => {
      draft.appliedSerial = Math.max(draft.appliedSerial, desired.serial);
      draft.lastResult = result;
    });
    return result;
  }
}
