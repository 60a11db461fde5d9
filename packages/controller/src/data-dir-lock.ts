import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import Database from "better-sqlite3";
import { FerryError, fileLockHolders, type LockHolder } from "@ferry/core";

/** Lives in the data directory for good: unlinking a lock file others may have open would let two holders lock two different files. */
export const DATA_DIR_LOCK_FILE = "controller.lock";

/**
 * How long a starter waits on a lock it cannot take. Not for queueing behind
 * a running controller: two starters racing both pass through SQLite's shared
 * lock on the way to the exclusive one, and the winner must be able to wait
 * the instant it takes the loser to step back.
 */
const CONTENTION_WAIT_MS = 1000;

/**
 * Every lock taken and not released. A connection nothing refers to is closed
 * by the garbage collector, which would let go of the lock while the
 * controller still runs; this set keeps it reachable until release().
 */
const held = new Set<Database.Database>();

export interface DataDirLock {
  /** The topmost directory this start created (root or one of its parents), if it created any. */
  created: string | undefined;
  release(): void;
}

/**
 * Creates the data directory if needed and takes the controller's exclusive
 * lock on it, for the life of the process.
 *
 * Why SQLite: Node has no flock(2). A pid file needs a liveness check that
 * races (two starters can both find a dead holder's file and both take it
 * over) and care for recycled pids; a `flock` child outlives a SIGKILLed
 * parent unless tied to it by a pipe. An open `BEGIN EXCLUSIVE` transaction
 * holds fcntl locks that the kernel itself drops when the process dies, in
 * whatever way, and SQLite's lock protocol lets exactly one of any number of
 * simultaneous starters through. A dedicated empty database keeps the state
 * database in WAL mode for its readers. Nothing else in this process may open
 * and close this file: closing any descriptor of a file drops the process's
 * fcntl locks on it.
 */
export function lockDataDir(root: string): DataDirLock {
  const file = join(root, DATA_DIR_LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    let created: string | undefined;
    let db: Database.Database;
    try {
      created = mkdirSync(root, { recursive: true, mode: 0o700 });
      db = new Database(file, { timeout: CONTENTION_WAIT_MS });
    } catch (error) {
      throw new FerryError("E_DATA_DIR_UNUSABLE", `cannot create or open ${file}: ${(error as Error).message}`, { cause: error });
    }
    try {
      db.exec("BEGIN EXCLUSIVE");
    } catch (error) {
      db.close();
      if ((error as { code?: unknown }).code !== "SQLITE_BUSY") {
        throw new FerryError("E_DATA_DIR_UNUSABLE", `cannot lock ${file}: ${(error as Error).message}`, { cause: error });
      }
      // Whoever won may be using a directory this attempt created: leave it be.
      const holder = fileLockHolders(file)?.[0];
      if (holder) throw lockedError(root, holder);
      // The holder let go between our attempt and the look: try again.
      continue;
    }
    // A failed first start removes the directory it created while holding the
    // lock; a starter that opened the file before that now holds a lock on a
    // file that no longer has this name. Only a lock the kernel lists under
    // the name counts; otherwise make the directory again.
    const holders = fileLockHolders(file);
    if (holders === undefined || holders.some((holder) => holder.pid === process.pid && holder.write)) {
      held.add(db);
      return {
        created,
        release: () => {
          held.delete(db);
          db.close();
        },
      };
    }
    db.close();
  }
  throw new FerryError("E_DATA_DIR_LOCKED", `cannot take the lock on ${root}: it changed hands three times (another pid namespace holding it?)`);
}

function lockedError(root: string, holder: LockHolder): FerryError {
  const who = holder.command ? `pid ${holder.pid} (${holder.command})` : `pid ${holder.pid}`;
  return new FerryError("E_DATA_DIR_LOCKED", `data directory ${resolve(root)} is in use by another controller: ${who}`);
}
