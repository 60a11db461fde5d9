import { spawn } from "node:child_process";
import { FerryError } from "./errors.js";
import { isStorePath } from "./validate.js";

export interface CommandSpec {
  /** argv[0] is the program; never a shell string. */
  argv: readonly string[];
  env?: Readonly<Record<string, string>>;
  timeoutMs?: number;
  /** Bytes written to the command's stdin, then closed. */
  input?: string | Uint8Array;
  cwd?: string;
  /**
   * Health-check commands come from the host's own configuration, not from
   * the network, so they may name any absolute program.
   */
  purpose?: "nix" | "health-check" | "sandbox" | "compress";
  /**
   * The command shares this process's terminal (stdin, stdout, stderr and
   * process group, so Ctrl-C reaches it) instead of having its output captured.
   */
  inheritStdio?: boolean;
  /** Aborting kills the command's process group, as a timeout does. */
  signal?: AbortSignal;
  /** Told the child's pid as soon as it exists, so a transaction can record it. */
  onSpawn?: (pid: number) => void;
  /** Bytes of stdout kept (its tail); a listing that is parsed whole needs all of it. */
  stdoutLimit?: number;
}

export interface CommandResult {
  argv: readonly string[];
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/**
 * The only way Ferry starts another program. Unit tests swap in a fake; the
 * real one is used everywhere else.
 */
export interface CommandRunner {
  run(spec: CommandSpec): Promise<CommandResult>;
}

/** A command whose stdout is read as a stream rather than captured (a NAR dump, a compressor). */
export interface StreamingCommand {
  /** Open while the command runs; write to it and end it to close the command's stdin. */
  stdin: NodeJS.WritableStream;
  stdout: AsyncIterable<Buffer>;
  /** Settles when the command has exited and its stdout closed; rejects with E_COMMAND_FAILED (stderr's tail) unless it exited 0. */
  done: Promise<void>;
  /** Kills the command's process group (on an error elsewhere in the pipeline). */
  kill(): void;
}

/** A runner that can also hand out a command's stdout as a stream: `ferry bundle create` reads NARs this way. */
export interface StreamingRunner extends CommandRunner {
  stream(spec: Omit<CommandSpec, "input" | "inheritStdio" | "stdoutLimit" | "onSpawn">): StreamingCommand;
}

export function isStreamingRunner(runner: CommandRunner): runner is StreamingRunner {
  return typeof (runner as Partial<StreamingRunner>).stream === "function";
}

const NIX_PROGRAMS = new Set(["nix", "nix-store", "nix-env", "nix-build", "nix-instantiate", "nix-collect-garbage", "systemctl"]);
const SWITCH_SUFFIX = "/bin/switch-to-configuration";
/** Bundles compress NARs on the fly with Debian's zstd; nothing else may start it. */
const COMPRESS_PROGRAMS = new Set(["zstd"]);
/** `ferry dev host` gives an agent a private /nix and /run; nothing else may start these. */
const SANDBOX_PROGRAMS = new Set(["unshare", "mount"]);

/** Programs Ferry may start: Nix's tools, systemctl and a system's own switch script. */
export function assertAllowedProgram(program: string | undefined, purpose: CommandSpec["purpose"] = "nix"): string {
  if (program !== undefined && NIX_PROGRAMS.has(program)) return program;
  if (purpose === "health-check" && program?.startsWith("/")) return program;
  if (purpose === "sandbox" && program !== undefined && SANDBOX_PROGRAMS.has(program)) return program;
  if (purpose === "compress" && program !== undefined && COMPRESS_PROGRAMS.has(program)) return program;
  if (program?.endsWith(SWITCH_SUFFIX) && isStorePath(program.slice(0, -SWITCH_SUFFIX.length))) return program;
  throw new FerryError("E_INTERNAL", `refusing to run unexpected program ${JSON.stringify(program)}`);
}

/** How much of each stream is kept: the tail, where errors are. */
const OUTPUT_LIMIT = 256 * 1024;

class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  private dropped = false;

  constructor(private readonly limit = OUTPUT_LIMIT) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size > this.limit && this.chunks.length > 1) {
      this.size -= (this.chunks.shift() as Buffer).length;
      this.dropped = true;
    }
  }

  text(): string {
    const all = Buffer.concat(this.chunks);
    const kept = all.length > this.limit ? all.subarray(all.length - this.limit) : all;
    return (this.dropped || kept.length < all.length ? "[…]\n" : "") + kept.toString("utf8");
  }
}

export class ProcessRunner implements StreamingRunner {
  constructor(private readonly baseEnv: Readonly<Record<string, string | undefined>> = process.env) {}

  stream(spec: Omit<CommandSpec, "input" | "inheritStdio" | "stdoutLimit" | "onSpawn">): StreamingCommand {
    const program = assertAllowedProgram(spec.argv[0], spec.purpose);
    const child = spawn(program, spec.argv.slice(1), {
      env: { ...this.baseEnv, ...spec.env },
      cwd: spec.cwd,
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
    });
    const stderr = new TailBuffer();
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    child.stdin.on("error", () => undefined);
    let timedOut = false;
    const timer =
      spec.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            killGroup(child.pid, "SIGKILL");
          }, spec.timeoutMs);
    const done = new Promise<void>((resolve, reject) => {
      child.on("error", (error) => reject(new FerryError("E_COMMAND_FAILED", `cannot start ${program}: ${error.message}`, { cause: error })));
      child.on("close", (exitCode, signal) => {
        if (timer) clearTimeout(timer);
        if (exitCode === 0) resolve();
        else {
          const how = timedOut ? "timed out" : signal ? `killed by ${signal}` : `exited with ${exitCode}`;
          reject(new FerryError("E_COMMAND_FAILED", `${spec.argv.join(" ")} ${how}: ${stderr.text().trim().slice(-2000)}`));
        }
      });
    });
    done.catch(() => undefined);
    return { stdin: child.stdin, stdout: child.stdout as AsyncIterable<Buffer>, done, kill: () => killGroup(child.pid, "SIGKILL") };
  }

  run(spec: CommandSpec): Promise<CommandResult> {
    if (spec.inheritStdio) return this.runAttached(spec);
    return new Promise((resolve, reject) => {
      const program = assertAllowedProgram(spec.argv[0], spec.purpose);
      // A process group of its own, so a timeout kills the whole tree the
      // command started (switch-to-configuration forks systemctl and more).
      const child = spawn(program, spec.argv.slice(1), {
        env: { ...this.baseEnv, ...spec.env },
        cwd: spec.cwd,
        stdio: ["pipe", "pipe", "pipe"],
        detached: true,
      });
      if (child.pid !== undefined) spec.onSpawn?.(child.pid);
      const stdout = new TailBuffer(spec.stdoutLimit);
      const stderr = new TailBuffer();
      let timedOut = false;
      const timer =
        spec.timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              timedOut = true;
              killGroup(child.pid, "SIGTERM");
              setTimeout(() => killGroup(child.pid, "SIGKILL"), 5000).unref();
            }, spec.timeoutMs);
      const onAbort = (): void => {
        killGroup(child.pid, "SIGTERM");
        setTimeout(() => killGroup(child.pid, "SIGKILL"), 5000).unref();
      };
      if (spec.signal?.aborted) onAbort();
      else spec.signal?.addEventListener("abort", onAbort, { once: true });
      child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
      child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
      child.on("error", (error) => {
        if (timer) clearTimeout(timer);
        reject(new FerryError("E_COMMAND_FAILED", `cannot start ${program}: ${error.message}`, { cause: error }));
      });
      child.on("close", (exitCode, signal) => {
        if (timer) clearTimeout(timer);
        spec.signal?.removeEventListener("abort", onAbort);
        resolve({ argv: spec.argv, exitCode, signal, stdout: stdout.text(), stderr: stderr.text(), timedOut });
      });
      child.stdin.on("error", () => undefined);
      child.stdin.end(spec.input ?? "");
    });
  }

  private runAttached(spec: CommandSpec): Promise<CommandResult> {
    return new Promise((resolve, reject) => {
      const program = assertAllowedProgram(spec.argv[0], spec.purpose);
      const child = spawn(program, spec.argv.slice(1), { env: { ...this.baseEnv, ...spec.env }, cwd: spec.cwd, stdio: "inherit" });
      if (child.pid !== undefined) spec.onSpawn?.(child.pid);
      child.on("error", (error) => reject(new FerryError("E_COMMAND_FAILED", `cannot start ${program}: ${error.message}`, { cause: error })));
      child.on("close", (exitCode, signal) => resolve({ argv: spec.argv, exitCode, signal, stdout: "", stderr: "", timedOut: false }));
    });
  }
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

/** The last lines of a command's output, for error reports. */
export function outputTail(result: CommandResult, maxChars = 8192): string {
  const text = [result.stdout.trimEnd(), result.stderr.trimEnd()].filter(Boolean).join("\n");
  return text.length > maxChars ? "[…]" + text.slice(text.length - maxChars) : text;
}

export function describeExit(result: CommandResult): string {
  if (result.timedOut) return "timed out";
  if (result.signal) return `killed by ${result.signal}`;
  return `exited with ${result.exitCode}`;
}
