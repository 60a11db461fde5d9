import { spawn, type ChildProcess } from "node:child_process";
import { openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "./exec.js";
import { FERRY_BIN } from "./paths.js";

export interface ControllerTlsSettings {
  certFile: string;
  keyFile: string;
  /** Operators must present a client certificate signed by this CA. */
  clientCaFile?: string;
  /** Agents must present a client certificate signed by this CA. */
  agentClientCaFile?: string;
}

export interface ControllerSettings {
  tls?: ControllerTlsSettings;
  privateCache?: boolean;
}

/** The real `ferry controller`, listening on every address so namespaced hosts reach it. */
export class ControllerProcess {
  httpPort = 0;
  grpcPort = 0;
  private child: ChildProcess | undefined;

  constructor(
    readonly dataDir: string,
    readonly settings: ControllerSettings = {},
  ) {}

  get tls(): boolean {
    return this.settings.tls !== undefined;
  }

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
    return this.tls ? `https://127.0.0.1:${this.grpcPort}` : `127.0.0.1:${this.grpcPort}`;
  }

  private tlsArgs(): string[] {
    const tls = this.settings.tls;
    if (!tls) return [];
    return [
      "--tls-cert",
      tls.certFile,
      "--tls-key",
      tls.keyFile,
      ...(tls.clientCaFile ? ["--client-ca", tls.clientCaFile] : []),
      ...(tls.agentClientCaFile ? ["--agent-client-ca", tls.agentClientCaFile] : []),
    ];
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
        ...this.tlsArgs(),
        ...(this.settings.privateCache ? ["--private-cache"] : []),
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

  /** SIGHUP: the controller re-reads its certificate files; resolves once it logged the reload (or its failure). */
  async reloadTls(): Promise<void> {
    const before = this.logText().split("\n").length;
    this.child?.kill("SIGHUP");
    await waitFor(
      "TLS reload",
      () =>
        this.logText()
          .split("\n")
          .slice(before - 1)
          .some((line) => line.includes("TLS certificates reloaded") || line.includes("TLS reload failed")) || undefined,
      10_000,
      50,
    );
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
