/**
 * Work that must not overlap, run one piece at a time in the order it
 * arrives; a piece that fails does not stop the ones after it.
 */
export class Turns {
  private last: Promise<unknown> = Promise.resolve();

  run<T>(work: () => Promise<T>): Promise<T> {
    const run = this.last.then(work, work);
    this.last = run.catch(() => undefined);
    return run;
  }
}
