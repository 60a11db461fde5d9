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
