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
