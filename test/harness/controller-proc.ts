import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync, readSync, statSync } from "node:fs";
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
  /** --heartbeat-interval; tests use 1 s so link loss shows quickly. */
  heartbeatIntervalSeconds?: number;
  /** FERRY_LOG_LEVEL; tests want every debug line, benchmarks with thousands of agents do not. */
  logLevel?: string;
  /** Where --listen binds; namespaced hosts need every address, loopback-only benchmarks 127.0.0.1. */
  listenHost?: string;
  /** Start through `sh -c 'ulimit -n …'` so that the controller may hold as many sockets as the hard limit allows. */
  raiseFileLimit?: boolean;
  /** A postgres:// URL: state in PostgreSQL, shared with other replicas; passed as FERRY_DATABASE_URL, as the NixOS module does. */
  database?: string;
  /** --cache-dir: a cache directory replicas share. */
  cacheDir?: string;
  /** Node's own flags before the CLI (`--cpu-prof`, which NODE_OPTIONS does not take), for profiling a bench's controller. */
  nodeArgs?: string[];
}

export interface StopOutcome {
  /** Whether it exited by itself within the time given; if not, it was killed. */
  exited: boolean;
  ms: number;
}

/** Runs argv with the open-file limit raised as far as this process may (soft up to hard; above, when privileged). */
export function withRaisedFileLimit(argv: readonly string[]): string[] {
  return ["sh", "-c", 'ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"', "sh", ...argv];
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
    // Only what this start writes is searched: a benchmark's log may hold millions of lines by now.
    const startedAt = statSync(this.logFile).size;
    const { settings } = this;
    const argv = [
      process.execPath,
      ...(settings.nodeArgs ?? []),
      FERRY_BIN,
      "controller",
      "--data-dir",
      this.dataDir,
      "--listen",
      `${settings.listenHost ?? "0.0.0.0"}:${this.httpPort}`,
      "--grpc-listen",
      `127.0.0.1:${this.grpcPort}`,
      "--heartbeat-interval",
      String(settings.heartbeatIntervalSeconds ?? 1),
      ...this.tlsArgs(),
      ...(settings.privateCache ? ["--private-cache"] : []),
      ...(settings.cacheDir ? ["--cache-dir", settings.cacheDir] : []),
    ];
    const [command, ...args] = settings.raiseFileLimit ? withRaisedFileLimit(argv) : argv;
    this.child = spawn(command as string, args, {
      stdio: ["ignore", log, log],
      env: {
        ...process.env,
        FERRY_LOG_LEVEL: settings.logLevel ?? "debug",
        ...(settings.database ? { FERRY_DATABASE_URL: settings.database } : {}),
      },
    });
    closeSync(log);
    const started = await waitFor(
      "controller start",
      () => {
        const line = this.logTextFrom(startedAt)
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

  /** Sends `signal` and waits up to `timeoutMs` for the exit; a controller still running then is killed. */
  async stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 10_000): Promise<StopOutcome> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return { exited: true, ms: 0 };
    const started = performance.now();
    const exited = new Promise<true>((resolve) => child.once("exit", () => resolve(true)));
    child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const inTime = await Promise.race([exited, new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)))]);
    clearTimeout(timer);
    const ms = performance.now() - started;
    if (!inTime) {
      child.kill("SIGKILL");
      await exited;
    }
    return { exited: inTime, ms };
  }

  logText(): string {
    try {
      return readFileSync(this.logFile, "utf8");
    } catch {
      return "";
    }
  }

  private logTextFrom(offset: number): string {
    const fd = openSync(this.logFile, "r");
    try {
      const length = Math.max(0, statSync(this.logFile).size - offset);
      const buffer = Buffer.alloc(Math.min(length, 1 << 20));
      return buffer.subarray(0, readSync(fd, buffer, 0, buffer.length, offset)).toString("utf8");
    } finally {
      closeSync(fd);
    }
  }
}
