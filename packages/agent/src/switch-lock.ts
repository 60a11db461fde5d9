import { readFileSync, statSync } from "node:fs";

export interface LockHolder {
  pid: number;
  command: string;
}

function majorMinor(dev: number): string {
  // Linux's encoding of dev_t (see makedev(3)), printed as /proc/locks does.
  const major = ((dev >> 8) & 0xfff) | (Math.floor(dev / 2 ** 32) & ~0xfff);
  const minor = (dev & 0xff) | ((dev >> 12) & ~0xff);
  return `${major.toString(16).padStart(2, "0")}:${minor.toString(16).padStart(2, "0")}`;
}

/**
 * Who holds a lock on `file`, read from /proc/locks. NixOS's
 * switch-to-configuration takes such a lock; an agent that finds it held
 * (an operator's nixos-rebuild, a stuck switch) reports that at once rather
 * than queueing behind it until its activation timeout.
 */
export function switchLockHolder(file: string, ownPid = process.pid): LockHolder | undefined {
  let id: string;
  try {
    const info = statSync(file);
    id = `${majorMinor(info.dev)}:${info.ino}`;
  } catch {
    return undefined;
  }
  let locks: string;
  try {
    locks = readFileSync("/proc/locks", "utf8");
  } catch {
    return undefined;
  }
  for (const line of locks.split("\n")) {
    // "1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0 EOF"; blocked waiters are marked "->".
    const fields = line.trim().split(/\s+/);
    if (fields[1] === "->") continue;
    const pid = Number(fields[4]);
    if (fields[5] !== id || !(pid > 0) || pid === ownPid) continue;
    let command = "";
    try {
      command = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ").slice(0, 200);
    } catch {
      // The holder may have just exited; still report it.
    }
    return { pid, command };
  }
  return undefined;
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
