import { readFileSync } from "node:fs";

/**
 * A pid plus its start time (field 22 of /proc/PID/stat) names one process
 * for good: a recycled pid has another start time.
 */
export function processStartTicks(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name may hold spaces and parentheses: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const state = fields[0];
    if (state === "Z" || state === "X") return undefined;
    return fields[19];
  } catch {
    return undefined;
  }
}

export function isSameProcessAlive(process: { pid: number; startTicks: string }): boolean {
  return processStartTicks(process.pid) === process.startTicks;
}
