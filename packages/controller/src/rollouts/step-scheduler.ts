import { Turns } from "@ferry/core";

/**
 * Runs a step soon after it is asked for: requests that arrive while one is
 * waiting share it, a request during a run queues exactly one more, so at
 * most one step is in flight and a burst of events costs one or two steps.
 * Other work (operator actions) takes turns with the steps through
 * `exclusive`.
 */
export class StepScheduler {
  private scheduled: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private readonly turns = new Turns();

  constructor(
    private readonly step: () => Promise<void>,
    private readonly onError: (error: unknown) => void,
    private readonly coalesceMs: number,
  ) {}

  request(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.scheduled) return;
    this.scheduled = setTimeout(() => this.runNow(), this.coalesceMs);
  }

  private runNow(): void {
    clearTimeout(this.scheduled);
    this.scheduled = undefined;
    this.running = this.exclusive(this.step)
      .catch(this.onError)
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.request();
        }
      });
  }

  exclusive<T>(work: () => Promise<T>): Promise<T> {
    return this.turns.run(work);
  }

  /** Resolves once no step is waiting or running. */
  async idle(): Promise<void> {
    // Bounded: a step that keeps asking for another would otherwise keep this waiting forever.
    for (let round = 0; round < 100 && (this.running || this.scheduled); round++) {
      if (this.scheduled && !this.running) this.runNow();
      await this.running;
    }
  }

  /** Takes requests again after stop() (a replica that leads again). */
  resume(): void {
    this.stopped = false;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.scheduled);
    this.scheduled = undefined;
    await this.running;
  }
}
