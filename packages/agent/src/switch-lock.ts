import { fileLockHolders, type LockHolder } from "@ferry/core";

export type { LockHolder };

/**
 * Who holds a lock on `file`. NixOS's switch-to-configuration takes such a
 * lock; an agent that finds it held (an operator's nixos-rebuild, a stuck
 * switch) reports that at once rather than queueing behind it until its
 * activation timeout.
 */
export function switchLockHolder(file: string, ownPid = process.pid): LockHolder | undefined {
  return fileLockHolders(file)?.find((holder) => holder.pid !== ownPid);
}

export function describeHolder(file: string, holder: LockHolder): string {
  return `${file} is held by pid ${holder.pid} (${holder.command || "unknown"})`;
}

/**
 * The agent's own side of the switch lock: everything in the agent that runs a
 * switch script (an activation, its rollback, a dry-activate) takes it, so
 * they never overlap. It lives in the process, not on the lock file, because
 * switch-to-configuration flocks that file itself: holding it while the child
 * runs would make the child wait for its own parent. Holders outside the agent
 * are found with `outsideHolder()`.
 */
export class SwitchLock {
  private holder: string | undefined;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly file: string) {}

  /** What holds the lock inside this agent, e.g. "activating serial 7". */
  get heldFor(): string | undefined {
    return this.holder;
  }

  outsideHolder(): LockHolder | undefined {
    return switchLockHolder(this.file);
  }

  /** Takes the lock now, or returns undefined when something in the agent holds it. */
  tryAcquire(purpose: string): (() => void) | undefined {
    if (this.holder !== undefined) return undefined;
    this.holder = purpose;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.holder = undefined;
      this.waiting.shift()?.();
    };
  }

  /** Waits for the agent's current holder, in arrival order, then takes the lock. */
  async acquire(purpose: string): Promise<() => void> {
    for (;;) {
      const release = this.tryAcquire(purpose);
      if (release) return release;
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }
}
