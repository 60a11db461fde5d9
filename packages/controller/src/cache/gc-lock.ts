import { randomBytes } from "node:crypto";
import { link, open, readFile, rename, stat, unlink, utimes } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { FerryError } from "@ferry/core";

/** In the cache directory: every controller sharing it sees the same file. */
export const GC_LOCK_FILE = "gc.lock";
/** The holder touches the file this often while it collects. */
const HEARTBEAT_MS = 60_000;
/** A lock not touched for this long belongs to a holder that died (on another machine, where its pid means nothing). */
export const GC_LOCK_STALE_MS = 10 * HEARTBEAT_MS;

interface LockText {
  id: string;
  host: string;
  pid: number;
  startedAtMs: number;
}

export interface GcLockOptions {
  /** This machine's name as written in the lock; a test stands in for another machine with another name. */
  host?: string;
  now?: () => number;
}

/**
 * Runs `work` holding the cache directory's collection lock, so that of
 * several controllers sharing the directory (NFS and the like) only one
 * collects at a time; the others refuse with E_CACHE_GC_RUNNING.
 *
 * Node has no flock(2), and fcntl locks over NFS depend on a lock daemon
 * that is often missing; creating a file with O_EXCL is atomic on every
 * shared filesystem Ferry supports (NFSv3 and later). The file names its
 * holder (host, pid, start) and is touched every minute; a lock untouched
 * for GC_LOCK_STALE_MS, or left by a dead process of this machine, is broken.
 * Breaking renames the file aside and puts it back (link, which never
 * replaces) if what was renamed turns out to be a fresh holder's.
 */
export async function withGcLock<T>(dir: string, work: () => Promise<T>, options: GcLockOptions = {}): Promise<T> {
  const file = join(dir, GC_LOCK_FILE);
  const mine: LockText = { id: randomBytes(8).toString("hex"), host: options.host ?? hostname(), pid: process.pid, startedAtMs: (options.now ?? Date.now)() };
  if (!(await create(file, mine))) {
    const holder = await readHolder(file);
    if (holder && !(await isStale(file, holder, mine.host, options.now ?? Date.now))) throw running(holder);
    if (holder) await breakStale(file, holder);
    if (!(await create(file, mine))) {
      const winner = await readHolder(file);
      throw running(winner ?? { id: "", host: "another controller", pid: 0, startedAtMs: 0 });
    }
  }
  const heartbeat = setInterval(() => {
    const at = new Date();
    void utimes(file, at, at).catch(() => undefined);
  }, HEARTBEAT_MS);
  heartbeat.unref();
  try {
    return await work();
  } finally {
    clearInterval(heartbeat);
    // Only our own: a lock broken while we stalled now belongs to someone else.
    if ((await readHolder(file))?.id === mine.id) await unlink(file).catch(() => undefined);
  }
}

async function create(file: string, text: LockText): Promise<boolean> {
  let handle;
  try {
    handle = await open(file, "wx", 0o644);
  } catch (error) {
    if ((error as { code?: unknown }).code === "EEXIST") return false;
    throw error;
  }
  try {
    // Not synced: after a crash an empty or lost lock file is what staleness handles anyway.
    await handle.writeFile(JSON.stringify(text));
  } finally {
    await handle.close();
  }
  return true;
}

/** The holder the file names; undefined when it is gone, and a nameless holder when it is unreadable (being written, or damaged). */
async function readHolder(file: string): Promise<LockText | undefined> {
  const text = await readFile(file, "utf8").catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const parsed = JSON.parse(text) as Partial<LockText>;
    if (typeof parsed.id === "string" && typeof parsed.host === "string" && typeof parsed.pid === "number" && typeof parsed.startedAtMs === "number") {
      return parsed as LockText;
    }
  } catch {
    // fall through
  }
  return { id: "", host: "unknown", pid: 0, startedAtMs: 0 };
}

async function isStale(file: string, holder: LockText, host: string, now: () => number): Promise<boolean> {
  if (holder.host === host && holder.pid > 0 && holder.pid !== process.pid && !alive(holder.pid)) return true;
  const touched = await stat(file).catch(() => undefined);
  return touched === undefined || now() - touched.mtimeMs > GC_LOCK_STALE_MS;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: unknown }).code === "EPERM";
  }
}

async function breakStale(file: string, stale: LockText): Promise<void> {
  const aside = `${file}.stale-${randomBytes(6).toString("hex")}`;
  try {
    await rename(file, aside);
  } catch {
    return; // someone else broke it first
  }
  const taken = await readHolder(aside);
  if (taken?.id !== stale.id) await link(aside, file).catch(() => undefined);
  await unlink(aside).catch(() => undefined);
}

function running(holder: LockText): FerryError {
  const since = holder.startedAtMs > 0 ? ` since ${new Date(holder.startedAtMs).toISOString()}` : "";
  const pid = holder.pid > 0 ? ` (pid ${holder.pid})` : "";
  return new FerryError("E_CACHE_GC_RUNNING", `a cache collection runs on ${holder.host}${pid}${since}; the cache directory is shared`);
}
