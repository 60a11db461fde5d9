import { assertStorePath, describeIntent, intentModeOfWire, modeFromWire, toFerryError, type Logger, type Mode } from "@ferry/core";
import { ActivationMode, ActivationResult, HostPhase, type DesiredSystem } from "@ferry/protocol/agent-channel";
import type { AgentSettings } from "./settings.js";
import type { ActivationTransaction } from "./transaction.js";
import type { ControllerLink } from "./controller-link.js";
import type { StateFile } from "./state-file.js";
import type { Admission, IntentGate } from "./intent-policy.js";

/** The deployment's mode when it names one, else the host's own strategy. */
export function strategyFor(mode: ActivationMode, configured: AgentSettings["strategy"]): Mode {
  return modeFromWire(mode) ?? configured;
}

/** What the reconciler needs of the transaction and the link. */
export type ReconcilerTransaction = Pick<ActivationTransaction, "run" | "resume" | "prefetch" | "refuse" | "currentSystem">;
export type ReconcilerLink = Pick<ControllerLink, "send">;

/**
 * Turns "the controller wants X" into at most one activation at a time. A
 * newer desired system that arrives mid-activation waits; intermediate ones
 * are skipped, because only the latest intent matters.
 */
export class Reconciler {
  private latest: DesiredSystem | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly transaction: ReconcilerTransaction,
    private readonly state: StateFile,
    private readonly link: ReconcilerLink,
    private readonly config: AgentSettings,
    private readonly log: Logger,
    private readonly intents: IntentGate,
    /** Called once an activation settled and nothing newer is waiting; true stops the reconciler for good (the agent exits). */
    private readonly onSettled: () => Promise<boolean> = async () => false,
  ) {}

  get busy(): boolean {
    return this.running !== undefined || this.state.state.transaction !== null;
  }

  /** Finishes what a previous process left half-done, before taking new work. */
  resume(): Promise<void> {
    this.running = this.transaction
      .resume()
      .then(async (result) => {
        if (!result) return;
        this.report(result);
        await this.settled();
      })
      .catch((error: unknown) => this.failed(error, "resuming the interrupted activation failed"))
      .finally(() => {
        this.running = undefined;
        this.kick();
      });
    return this.running;
  }

  onDesired(desired: DesiredSystem): void {
    if (this.latest && desired.serial < this.latest.serial) return;
    this.latest = desired;
    this.kick();
  }

  /**
   * Re-sends the last result, as it stands now: the link may have dropped
   * before it arrived, and a boot-pending system may since have booted.
   */
  onConnected(): void {
    const last = this.state.state.lastResult;
    if (!last) return;
    const current = this.transaction.currentSystem();
    const booted = last.phase === HostPhase.HOST_PHASE_BOOT_PENDING && last.storePath === current;
    // fromPartial: a result stored by an older agent lacks the fields added since, and encoding needs them all.
    const value = ActivationResult.fromPartial({ ...last, currentSystem: current, ...(booted ? { phase: HostPhase.HOST_PHASE_ACTIVE } : {}) });
    this.link.send({ $case: "result", value });
  }

  idle(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  private report(result: ActivationResult): void {
    this.link.send({ $case: "result", value: result });
  }

  private again = false;

  private kick(): void {
    if (this.stopped) return;
    if (this.running) {
      // Looked at again once this round ends: a desired system that arrives while the round
      // waits on its last step (the settle after an activation) would otherwise wait for the next one.
      this.again = true;
      return;
    }
    this.running = this.drain().finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.kick();
      }
    });
  }

  /**
   * Applies the latest desired system until none is newer than the applied
   * serial. An error that escapes a transaction is logged with its code and
   * ends this round, not the process: the next desired system or reconnect
   * starts another, which first finishes a transaction still left open.
   */
  private async drain(): Promise<void> {
    let activated = false;
    for (;;) {
      try {
        if (this.state.state.transaction) {
          const result = await this.transaction.resume();
          if (result) this.report(result);
          activated = true;
          continue;
        }
        const desired = this.latest;
        if (!desired || desired.serial <= this.state.state.appliedSerial) break;
        if (await this.apply(desired)) activated = true;
      } catch (error) {
        this.failed(error, "activation stopped by an unexpected error; trying again on the next desired system or reconnect");
        return;
      }
    }
    if (activated) await this.settled();
  }

  private async settled(): Promise<void> {
    try {
      if (await this.onSettled()) this.stopped = true;
    } catch (error) {
      this.failed(error, "checking for a new agent build failed");
    }
  }

  private failed(error: unknown, message: string): void {
    const failure = toFerryError(error, "E_INTERNAL");
    this.log.error({ code: failure.code, err: failure.message, stack: failure.cause instanceof Error ? failure.cause.stack : failure.stack }, message);
  }

  /** Answers one desired system; true when that ran an activation. */
  private async apply(desired: DesiredSystem): Promise<boolean> {
    const log = this.log.child({ serial: desired.serial, deploymentId: desired.deploymentId, rolloutId: desired.rolloutId || undefined });
    if (desired.storePath === "") {
      this.state.record((draft) => {
        draft.appliedSerial = desired.serial;
      });
      return false;
    }
    // A prefetch switches nothing, so it needs no intent; the activation that follows does.
    let admission: Admission = { signed: false };
    const strategy = strategyFor(desired.mode, this.config.strategy);
    try {
      assertStorePath(desired.storePath);
      if (desired.activate) {
        admission = this.intents.admit({ storePath: desired.storePath, mode: intentModeOfWire(desired.mode), effectiveMode: strategy, intent: desired.intent });
      }
    } catch (error) {
      const failure = toFerryError(error, "E_BAD_STORE_PATH");
      log.error({ code: failure.code, storePath: desired.storePath.slice(0, 300) }, `refused: ${failure.message}`);
      this.report(this.transaction.refuse(desired.serial, failure));
      return false;
    }
    if (!desired.activate) {
      log.info({ storePath: desired.storePath }, "prefetch requested");
      this.report(await this.transaction.prefetch({ serial: desired.serial, storePath: desired.storePath }));
      return false;
    }
    const intent = admission.signed ? describeIntent(admission.intent, admission.signer) : "unsigned";
    log.info({ storePath: desired.storePath, strategy, intent }, "new desired system");
    this.report(await this.transaction.run({ serial: desired.serial, storePath: desired.storePath, deploymentId: desired.deploymentId, strategy }));
    return true;
  }
}
