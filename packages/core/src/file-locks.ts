import { readFileSync, statSync } from "node:fs";

export interface LockHolder {
  pid: number;
  /** The holder's command line, when /proc lets us read it; "" otherwise. */
  command: string;
  /** Holds a write (exclusive) lock, not only a shared one. */
  write: boolean;
}

function majorMinor(dev: number): string {
  // Linux's encoding of dev_t (see makedev(3)), printed as /proc/locks does.
  const major = ((dev >> 8) & 0xfff) | (Math.floor(dev / 2 ** 32) & ~0xfff);
  const minor = (dev & 0xff) | ((dev >> 12) & ~0xff);
  return `${major.toString(16).padStart(2, "0")}:${minor.toString(16).padStart(2, "0")}`;
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ").slice(0, 200);
  } catch {
    // The holder may have just exited, or live in another pid namespace.
    return "";
  }
}

/**
 * The processes holding a lock (flock or fcntl) on `file`, read from
 * /proc/locks. That is the kernel's own table, so unlike a pid file it is
 * never stale: a process that dies, even by SIGKILL, leaves it at once.
 * Returns [] when the file does not exist or nobody holds it, and undefined
 * when /proc/locks cannot be read (no procfs), so callers can tell "free" from
 * "cannot tell". Blocked waiters ("->" lines) do not hold the lock and are
 * left out; a pid from another pid namespace shows as 0 or less and is too.
 * Exclusive (write) holders come first.
 */
export function fileLockHolders(file: string): LockHolder[] | undefined {
  let locks: string;
  try {
    locks = readFileSync("/proc/locks", "utf8");
  } catch {
    return undefined;
  }
  let id: string;
  try {
    const info = statSync(file);
    id = `${majorMinor(info.dev)}:${info.ino}`;
  } catch {
    return [];
  }
  const holders = new Map<number, LockHolder>();
  for (const line of locks.split("\n")) {
    // "1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0 EOF"
    const fields = line.trim().split(/\s+/);
    if (fields[1] === "->") continue;
    const pid = Number(fields[4]);
    if (fields[5] !== id || !(pid > 0)) continue;
    const holder = holders.get(pid) ?? { pid, command: commandLine(pid), write: false };
    holder.write ||= fields[3] === "WRITE";
    holders.set(pid, holder);
  }
  // Exclusive holders first: they are the ones others wait for.
  return [...holders.values()].sort((a, b) => Number(b.write) - Number(a.write));
}
