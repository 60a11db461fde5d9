// Runs the built `ferry` as a user would, with an environment of the test's
// choosing: no FERRY_* variable leaks in from the caller, and the CLI
// configuration lives in a scratch directory unless the test says otherwise.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, openSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { exec, waitFor, type ExecResult } from "../../../test/harness/exec.js";

export const FERRY_MAIN = fileURLToPath(new URL("../dist/main.js", import.meta.url));

export interface CliResult extends ExecResult {
  json<T = Record<string, unknown>>(): T;
}

export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) if (value !== undefined && !key.startsWith("FERRY_") && key !== "XDG_CONFIG_HOME") env[key] = value;
  return { ...env, XDG_CONFIG_HOME: join(mkdtempSync(join(tmpdir(), "ferry-cli-test-")), "config"), ...extra };
}

export async function ferry(
  args: readonly string[],
  env: Record<string, string> = cleanEnv(),
  options: { cwd?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  const result = await exec([process.execPath, FERRY_MAIN, ...args], {
    env,
    timeoutMs: options.timeoutMs ?? 30_000,
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
  return {
    ...result,
    json<T>() {
      try {
        return JSON.parse(result.stdout) as T;
      } catch {
        throw new Error(`ferry ${args.join(" ")} printed no JSON (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
      }
    },
  };
}

/** A real `ferry controller` on loopback ports the kernel picks. */
export class TestController {
  httpPort = 0;
  grpcPort = 0;
  readonly dir = mkdtempSync(join(tmpdir(), "ferry-cli-ctl-"));
  private child: ChildProcess | undefined;

  get dataDir(): string {
    return join(this.dir, "data");
  }
  get tokenFile(): string {
    return join(this.dataDir, "admin.token");
  }
  get address(): string {
    return `127.0.0.1:${this.grpcPort}`;
  }
  get logFile(): string {
    return join(this.dir, "controller.log");
  }

  async start(): Promise<void> {
    const log = openSync(this.logFile, "a");
    this.child = spawn(
      process.execPath,
      [FERRY_MAIN, "controller", "--data-dir", this.dataDir, "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0", "--heartbeat-interval", "1"],
      { stdio: ["ignore", log, log], env: cleanEnv() },
    );
    const started = await waitFor(
      "controller start",
      () => {
        const line = readFileSync(this.logFile, "utf8")
          .split("\n")
          .find((l) => l.includes('"controller started"'));
        return line ? (JSON.parse(line) as { httpPort: number; grpcPort: number }) : undefined;
      },
      20_000,
      50,
    );
    this.httpPort = started.httpPort;
    this.grpcPort = started.grpcPort;
  }

  /** Flags that reach this controller. */
  connection(): string[] {
    return ["--controller", this.address, "--token-file", this.tokenFile];
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000).unref())]);
    if (child.exitCode === null) child.kill("SIGKILL");
  }
}
