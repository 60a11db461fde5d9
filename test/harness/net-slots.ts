import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const SLOT_DIR = "/tmp/ferry-test-netslots";
export const SLOTS = 250;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Hands out a /30 subnet index that no concurrently running test file holds.
 * mkdir is atomic, so two processes cannot take the same slot; a slot left by
 * a dead process is reclaimed.
 */
export function takeSlot(): number {
  mkdirSync(SLOT_DIR, { recursive: true });
  for (let slot = 1; slot <= SLOTS; slot++) {
    const dir = join(SLOT_DIR, String(slot));
    try {
      mkdirSync(dir);
    } catch {
      const owner = Number(readFileSafe(join(dir, "pid")));
      if (owner > 0 && alive(owner)) continue;
      if (!owner) continue;
      rmSync(dir, { recursive: true, force: true });
      try {
        mkdirSync(dir);
      } catch {
        continue;
      }
    }
    writeFileSync(join(dir, "pid"), String(process.pid));
    return slot;
  }
  throw new Error("no free network slot for a simulated host");
}

export function releaseSlot(slot: number): void {
  rmSync(join(SLOT_DIR, String(slot)), { recursive: true, force: true });
}

function readFileSafe(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}
