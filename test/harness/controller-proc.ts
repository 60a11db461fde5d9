import { spawn, type ChildProcess } from "node:child_process";
import { openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "./exec.js";
import { FERRY_BIN } from "./paths.js";

/** The real `ferry controller`, listening on every address so namespaced hosts reach it. */
export class ControllerProcess {
  httpPort = 0;
  grpcPort = 0;
  private child: ChildProcess | undefined;

  constructor(readonly dataDir: string) {}

  get logFile(): string {
    return join(this.dataDir, "..", "controller.log");
  }

  get tokenFile(): string {
    return join(this.dataDir, "admin.token");
  }

  /** The running controller's pid, for tests that look for it in messages or kill it. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The operator address for the CLI. */
  get address(): string {
    return `127.0.0.1:${this.grpcPort}`;
  }

  async start(): Promise<void> {
    const log = openSync(this.logFile, "a");
    const startedBefore = this.logText().split("\n").length;
    this.child = spawn(
      process.execPath,
      [
        FERRY_BIN,
        "controller",
        "--data-dir",
        this.dataDir,
        "--listen",
        `0.0.0.0:${this.httpPort}`,
        "--grpc-listen",
        `127.0.0.1:${this.grpcPort}`,
        "--heartbeat-interval",
        "1",
      ],
      { stdio: ["ignore", log, log], env: { ...process.env, FERRY_LOG_LEVEL: "debug" } },
    );
    const started = await waitFor(
      "controller start",
      () => {
        const lines = this.logText()
          .split("\n")
          .slice(startedBefore - 1);
        const line = lines.find((l) => l.includes('"controller started"'));
        return line ? (JSON.parse(line) as { httpPort: number; grpcPort: number }) : undefined;
      },
      20_000,
      50,
    );
    this.httpPort = started.httpPort;
    this.grpcPort = started.grpcPort;
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill(signal);
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000).unref())]);
    this.child = undefined;
  }

  logText(): string {
    try {
      return readFileSync(this.logFile, "utf8");
    } catch {
      return "";
    }
  }
}
