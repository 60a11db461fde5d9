// What the agents bench reads about a process from /proc, and the few
// statistics it prints: percentiles over latency samples.
import { closeSync, fsyncSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";

/** Clock ticks per second of utime/stime in /proc/PID/stat (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

export interface Memory {
  rssMiB: number;
  hwmMiB: number;
}

/** VmRSS and VmHWM from /proc/PID/status; NaN once the process is gone. */
export function readMemory(pid: number): Memory {
  let status = "";
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return { rssMiB: NaN, hwmMiB: NaN };
  }
  const kib = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) / 1024;
  return { rssMiB: kib("VmRSS"), hwmMiB: kib("VmHWM") };
}

/** User + system CPU seconds the process used so far (fields 14 and 15 of /proc/PID/stat). */
export function readCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces; count fields after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return NaN;
  }
}

interface Sample {
  atMs: number;
  cpuSeconds: number;
  rssMiB: number;
}

/** Samples one process every `intervalMs`, so that any window of the run can be summarised afterwards. */
export class ProcessSampler {
  private readonly samples: Sample[] = [];
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly pid: number,
    intervalMs = 1000,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  private sample(): void {
    const cpuSeconds = readCpuSeconds(this.pid);
    if (Number.isNaN(cpuSeconds)) return;
    this.samples.push({ atMs: Date.now(), cpuSeconds, rssMiB: readMemory(this.pid).rssMiB });
  }

  /** Takes one more sample now (the end of a window) and returns the process's peak so far. */
  mark(): Memory {
    this.sample();
    return readMemory(this.pid);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Average CPU (100 = one core) and highest sampled RSS between two times. */
  window(fromMs: number, toMs: number): { cpuPercent: number; maxRssMiB: number } {
    const inside = this.samples.filter((s) => s.atMs >= fromMs && s.atMs <= toMs);
    const first = inside[0];
    const last = inside[inside.length - 1];
    if (!first || !last || last.atMs === first.atMs) return { cpuPercent: NaN, maxRssMiB: NaN };
    return {
      cpuPercent: ((last.cpuSeconds - first.cpuSeconds) / ((last.atMs - first.atMs) / 1000)) * 100,
      maxRssMiB: Math.max(...inside.map((s) => s.rssMiB)),
    };
  }
}

export interface Spread {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentiles; NaN for no samples. */
export function spread(values: readonly number[]): Spread {
  if (values.length === 0) return { count: 0, p50: NaN, p99: NaN, max: NaN };
  const sorted = Float64Array.from(values).sort();
  const rank = (p: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
  return { count: sorted.length, p50: rank(50), p99: rank(99), max: sorted[sorted.length - 1] as number };
}

/** Median time of a 4 KiB write + fsync in `dir`: the controller's durable writes wait for this. */
export function fsyncMs(dir: string, rounds = 50): number {
  const file = join(dir, "fsync-probe");
  const fd = openSync(file, "w");
  const block = Buffer.alloc(4096, 1);
  const times: number[] = [];
  try {
    for (let i = 0; i < rounds; i++) {
      const started = performance.now();
      writeSync(fd, block);
      fsyncSync(fd);
      times.push(performance.now() - started);
    }
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
  return spread(times).p50;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `done` until it holds (true) or the absolute deadline passes (false). */
export async function until(done: () => boolean, deadlineMs: number, intervalMs = 250): Promise<boolean> {
  for (;;) {
    if (done()) return true;
    if (Date.now() >= deadlineMs) return false;
    await sleep(intervalMs);
  }
}

/** A positive number from the environment, else `fallback`. */
export function envNumber(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`);
  return value;
}

/** As envNumber, a whole number. */
export function envWhole(name: string, fallback: number): number {
  const value = envNumber(name, fallback);
  if (!Number.isInteger(value)) throw new Error(`${name} must be a positive whole number`);
  return value;
}
