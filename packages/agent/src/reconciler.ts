import { assertStorePath, describeIntent, intentModeOfWire, modeFromWire, toFerryError, type Logger, type Mode } from "@ferry/core";
import { HostPhase, type ActivationMode, type ActivationResult, type DesiredSystem } from "@ferry/protocol";
import type { AgentConfig } from "./config.js";
import type { ActivationTransaction } from "./transaction.js";
import type { ControllerLink } from "./controller-link.js";
import type { Admission, IntentGate } from "./intent-policy.js";
import type { StateFile } from "./state-file.js";

/** The deployment's mode when it names one, else the host's own strategy. */
export function strategyFor(mode: ActivationMode, configured: AgentConfig["strategy"]): Mode {
  return modeFromWire(mode) ?? configured;
}

/**
 * Turns "the controller wants X" into at most one activation at a time. A
 * newer desired system that arrives mid-activation waits; intermediate ones
 * are skipped, because only the latest intent matters.
 */
export class Reconciler {
  private latest: DesiredSystem | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly transaction: ActivationTransaction,
    private readonly state: StateFile,
    private readonly link: ControllerLink,
    private readonly config: AgentConfig,
    private readonly log: Logger,
    private readonly intents: IntentGate,
  ) {}

  get busy(): boolean {
    return this.running !== undefined || this.state.state.transaction !== null;
  }

  /** Finishes what a previous process left half-done, before taking new work. */
  resume(): Promise<void> {
    this.running = this.transaction
      .resume()
      .then((result) => {
        if (result) this.report(result);
      })
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
    this.link.send({ $case: "result", value: { ...last, currentSystem: current, ...(booted ? { phase: HostPhase.HOST_PHASE_ACTIVE } : {}) } });
  }

  idle(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  private report(result: ActivationResult): void {
    this.link.send({ $case: "result", value: result });
  }

  private kick(): void {
    if (this.running) return;
    this.running = this.drain().finally(() => {
      this.running = undefined;
    });
  }

  private async drain(): Promise<void> {
    for (;;) {
      const desired = this.latest;
      if (!desired || desired.serial <= this.state.state.appliedSerial) return;
      await this.apply(desired);
    }
  }

  private async apply(desired: DesiredSystem): Promise<void> {
    const log = this.log.child({ serial: desired.serial, deploymentId: desired.deploymentId, rolloutId: desired.rolloutId || undefined });
    if (desired.storePath === "") {
      this.state.update((draft) => {
        draft.appliedSerial = desired.serial;
      });
      return;
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
      const failure = toFerryError(error);
      log.error({ code: failure.code, storePath: desired.storePath.slice(0, 300) }, `refused: ${failure.message}`);
      this.report(this.transaction.refuse(desired.serial, failure));
      return;
    }
    if (!desired.activate) {
      log.info({ storePath: desired.storePath }, "prefetch requested");
      this.report(await this.transaction.prefetch({ serial: desired.serial, storePath: desired.storePath }));
      return;
    }
    const intent = admission.signed ? describeIntent(admission.intent, admission.signer) : "unsigned";
    log.info({ storePath: desired.storePath, strategy, intent }, "new desired system");
    this.report(await this.transaction.run({ serial: desired.serial, storePath: desired.storePath, deploymentId: desired.deploymentId, strategy }));
  }
}
