import { assertStorePath, FerryError, type Logger } from "@ferry/core";
import { HostPhase, type DesiredSystem } from "@ferry/protocol";
import type { Activation } from "./activation.js";
import type { ControllerLink } from "./controller-link.js";
import type { StateFile } from "./state-file.js";

/**
 * Turns "the controller wants X" into at most one activation at a time. A
 * newer desired system that arrives mid-activation waits; intermediate ones
 * are skipped, because only the latest intent matters.
 */
export class Reconciler {
  private latest: DesiredSystem | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly activation: Activation,
    private readonly state: StateFile,
    private readonly link: ControllerLink,
    private readonly log: Logger,
  ) {}

  /** Finishes what a previous process left half-done, before taking new work. */
  async resume(): Promise<void> {
    const result = await this.activation.resume();
    if (result) this.link.send({ $case: "result", value: result });
  }

  onDesired(desired: DesiredSystem): void {
    if (this.latest && desired.serial < this.latest.serial) return;
    this.latest = desired;
    this.kick();
  }

  /** Re-sends the last result: the link may have dropped before it arrived. */
  onConnected(): void {
    const last = this.state.state.lastResult;
    if (last) this.link.send({ $case: "result", value: last });
  }

  idle(): Promise<void> {
    return this.running ?? Promise.resolve();
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
    try {
      assertStorePath(desired.storePath);
    } catch (error) {
      const failure = error as FerryError;
      log.error({ code: failure.code }, failure.message);
      const result = {
        hostName: desired.hostName,
        serial: desired.serial,
        storePath: "",
        success: false,
        phase: HostPhase.HOST_PHASE_FAILED,
        errorCode: failure.code,
        errorMessage: failure.message,
        output: "",
        currentSystem: this.activation.currentSystem(),
        finishedAtMs: Date.now(),
      };
      this.state.update((draft) => {
        draft.appliedSerial = desired.serial;
        draft.lastResult = result;
      });
      this.link.send({ $case: "result", value: result });
      return;
    }
    log.info({ storePath: desired.storePath }, "new desired system");
    const result = await this.activation.run({ serial: desired.serial, storePath: desired.storePath, deploymentId: desired.deploymentId });
    this.link.send({ $case: "result", value: result });
  }
}
