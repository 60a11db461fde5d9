// A throw-away PostgreSQL cluster for tests: its own data directory under the
// temporary directory, its own loopback port, and stopped (directory removed)
// when the test says so or, at the latest, when the test process exits.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { exec, mustExec } from "./exec.js";
import { freePort } from "./ports.js";
import { childrenOf, reapAbandoned, running, signal } from "./postgres-procs.js";
import { asServer, copyTemplate, findPostgres, initdb, serverEnv, serverTempDir, serverUser, templateDir, type ServerUser } from "./postgres-install.js";

export { findPostgres, type PostgresFound } from "./postgres-install.js";

export interface PostgresOptions {
  /**
   * fsync, synchronous_commit and full_page_writes off: for contract tests
   * only. Durable (the server's defaults) unless asked, since tests of what
   * survives a crash must not run against settings no deployment uses.
   */
  fast?: boolean;
  /** Further server settings (`-c name=value`). */
  settings?: Record<string, string>;
  /** Copy the cached initialised template (default) or run initdb for this cluster. */
  fromTemplate?: boolean;
  /** How long a start may take before it fails with the server log's tail. */
  startTimeoutMs?: number;
}

export interface PostgresCluster {
  /** postgres://ferry@127.0.0.1:PORT/postgres */
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  /** The running postmaster's pid, undefined while it is down. */
  readonly pid: number | undefined;
  /** Stops the server (immediate shutdown) and removes its directory; safe to call twice. */
  stop(): Promise<void>;
  /** Fast shutdown, then start again on the same port with the same data. */
  restart(): Promise<void>;
  /** Fast shutdown, keeping the data: the database is down until start(). */
  shutdown(): Promise<void>;
  /** Starts a server that shutdown() or kill() brought down (crash recovery after kill()). */
  start(): Promise<void>;
  /** SIGKILL to the postmaster and every backend: a crash, as the OOM killer or a power cut leaves it. */
  kill(): Promise<void>;
  /** A new empty database; its URL. */
  createDatabase(name: string): Promise<string>;
  /** Runs SQL through psql (unaligned, tuples only); its output. */
  psql(sql: string, database?: string): Promise<string>;
  /** The end of the server's log, for failure messages. */
  logTail(lines?: number): string;
}

const live = new Set<Cluster>();

/** Starts a fresh cluster; fails with the reason findPostgres gives when PostgreSQL is not installed. */
export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresCluster> {
  const found = findPostgres();
  if ("skip" in found) throw new Error(found.skip);
  reapAbandoned();
  const user = serverUser();
  const template = options.fromTemplate === false ? undefined : await templateDir(found.binDir, user);
  const root = serverTempDir(user, "ferry-pg-");
  writeFileSync(join(root, "owner.pid"), String(process.pid));
  const cluster = new Cluster(found.binDir, user, root, options);
  live.add(cluster);
  installExitCleanup();
  try {
    if (template) await copyTemplate(template, cluster.dataDir);
    else await initdb(found.binDir, user, cluster.dataDir);
    await cluster.startOnFreePort();
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}

class Cluster implements PostgresCluster {
  readonly dataDir: string;
  port = 0;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly binDir: string,
    private readonly user: ServerUser | undefined,
    private readonly root: string,
    private readonly options: PostgresOptions,
  ) {
    this.dataDir = join(root, "data");
  }

  get url(): string {
    return this.urlOf("postgres");
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  private get logFile(): string {
    return join(this.root, "server.log");
  }

  private urlOf(database: string): string {
    return `postgres://ferry@127.0.0.1:${this.port}/${database}`;
  }

  async startOnFreePort(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      // The server may still lose this port to another process; a start then tries again.
      this.port = await freePort();
      if ((await this.launch()) === "started") return;
      if (attempt === 5) throw new Error(`PostgreSQL found no free port in 5 attempts\n${this.logTail()}`);
    }
  }

  async start(): Promise<void> {
    if (this.stopped) throw new Error("this PostgreSQL cluster was stopped and its directory removed");
    if (this.child) return;
    // Another process may hold the port for a moment (a client's ephemeral port): try again, boundedly.
    const deadline = Date.now() + 10_000;
    while ((await this.launch()) === "port-in-use") {
      if (Date.now() > deadline) throw new Error(`PostgreSQL could not bind 127.0.0.1:${this.port} again\n${this.logTail()}`);
      await sleep(200);
    }
  }

  private settings(): string[] {
    const settings: Record<string, string> = {
      listen_addresses: "127.0.0.1",
      port: String(this.port),
      unix_socket_directories: this.root,
      max_connections: "200",
      // Enough for 200 connections; the initdb default of 128MB is more than several clusters at once need.
      shared_buffers: "32MB",
      ...(this.options.fast ? { fsync: "off", synchronous_commit: "off", full_page_writes: "off" } : {}),
      ...this.options.settings,
    };
    return Object.entries(settings).flatMap(([name, value]) => ["-c", `${name}=${value}`]);
  }

  private async launch(): Promise<"started" | "port-in-use"> {
    const logStart = this.logText().length;
    const log = openSync(this.logFile, "a");
    const [command, ...args] = asServer(this.user, [join(this.binDir, "postgres"), "-D", this.dataDir, ...this.settings()], true);
    // Its own process group: a Ctrl-C in the terminal reaches the test, whose cleanup stops the server.
    const child = spawn(command as string, args, { stdio: ["ignore", log, log], env: serverEnv(), cwd: this.root, detached: true });
    closeSync(log);
    this.child = child;
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
    void this.exited.then(() => {
      if (this.child === child) this.child = undefined;
    });
    // A forgotten cluster must not keep the test process alive; the exit handler stops it.
    child.unref();
    const deadline = Date.now() + (this.options.startTimeoutMs ?? 30_000);
    for (;;) {
      if (this.child !== child) {
        const log = this.logText().slice(logStart);
        if (/could not bind|Address already in use/.test(log)) return "port-in-use";
        throw new Error(`PostgreSQL exited while starting\n${this.logTail()}`);
      }
      const ready = await exec(
        [join(this.binDir, "pg_isready"), "-q", "-h", "127.0.0.1", "-p", String(this.port), "-U", "ferry", "-d", "postgres", "-t", "2"],
        {
          env: serverEnv(),
          timeoutMs: 5_000,
        },
      );
      if (ready.code === 0 && this.child === child) return "started";
      if (Date.now() > deadline) {
        await this.kill();
        throw new Error(`PostgreSQL not accepting connections on 127.0.0.1:${this.port} after ${this.options.startTimeoutMs ?? 30_000} ms\n${this.logTail()}`);
      }
      await sleep(50);
    }
  }

  async shutdown(): Promise<void> {
    // SIGINT is PostgreSQL's fast shutdown (pg_ctl stop -m fast): clients are cut, a checkpoint is written.
    await this.signalAndWait("SIGINT", 60_000);
  }

  async restart(): Promise<void> {
    await this.shutdown();
    await this.start();
  }

  async kill(): Promise<void> {
    const pid = this.child?.pid;
    if (pid === undefined) return;
    // Stopped first, so that no backend is forked between listing the children and killing them.
    signal(pid, "SIGSTOP");
    const backends = childrenOf(pid);
    signal(pid, "SIGKILL");
    for (const backend of backends) signal(backend, "SIGKILL");
    await this.untilExit();
    // Backends are reparented and reaped by whoever is init; the shared memory is free once they are gone.
    const deadline = Date.now() + 10_000;
    while (backends.some(running)) {
      if (Date.now() > deadline) throw new Error(`PostgreSQL backends ${backends.filter(running).join(", ")} outlived SIGKILL`);
      await sleep(20);
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    try {
      // SIGQUIT is the immediate shutdown: nothing is kept, so nothing needs writing.
      await this.signalAndWait("SIGQUIT", 10_000);
    } finally {
      live.delete(this);
      rmSync(this.root, { recursive: true, force: true });
    }
  }

  /** The exit handler's version: nothing asynchronous runs any more. */
  stopNow(): void {
    if (this.stopped) return;
    this.stopped = true;
    live.delete(this);
    const pid = this.child?.pid;
    if (pid !== undefined && running(pid)) {
      const [command, ...args] = asServer(this.user, [join(this.binDir, "pg_ctl"), "stop", "-D", this.dataDir, "-m", "immediate", "-w", "-t", "10"]);
      spawnSync(command as string, args, { env: serverEnv(), stdio: "ignore", timeout: 15_000 });
      if (running(pid)) {
        for (const backend of childrenOf(pid)) signal(backend, "SIGKILL");
        signal(pid, "SIGKILL");
      }
    }
    rmSync(this.root, { recursive: true, force: true });
  }

  private async signalAndWait(name: NodeJS.Signals, timeoutMs: number): Promise<void> {
    const pid = this.child?.pid;
    if (pid === undefined) return;
    signal(pid, name);
    let timer: NodeJS.Timeout | undefined;
    const inTime = await Promise.race([
      this.untilExit().then(() => true),
      new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (!inTime) await this.kill();
  }

  /** The child is unreferenced so that a forgotten cluster lets the process end; a wait for its exit must hold the loop open. */
  private untilExit(): Promise<void> {
    this.child?.ref();
    return this.exited;
  }

  async createDatabase(name: string): Promise<string> {
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`not a database name for tests: ${JSON.stringify(name)}`);
    await mustExec([join(this.binDir, "createdb"), "-h", "127.0.0.1", "-p", String(this.port), "-U", "ferry", name], { env: serverEnv(), timeoutMs: 30_000 });
    return this.urlOf(name);
  }

  psql(sql: string, database = "postgres"): Promise<string> {
    return mustExec(
      [
        join(this.binDir, "psql"),
        "-X",
        "-q",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        "127.0.0.1",
        "-p",
        String(this.port),
        "-U",
        "ferry",
        "-d",
        database,
        "-f",
        "-",
      ],
      { env: serverEnv(), input: sql, timeoutMs: 30_000 },
    );
  }

  logTail(lines = 30): string {
    return this.logText().trimEnd().split("\n").slice(-lines).join("\n");
  }

  private logText(): string {
    try {
      return readFileSync(this.logFile, "utf8");
    } catch {
      return "";
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

let exitCleanupInstalled = false;

function installExitCleanup(): void {
  if (exitCleanupInstalled) return;
  exitCleanupInstalled = true;
  const cleanup = (): void => {
    for (const cluster of [...live]) cluster.stopNow();
  };
  process.on("exit", cleanup);
  for (const name of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(name, () => {
      cleanup();
      // Only our listener was there: the signal's own default (exit) must still happen.
      if (process.listenerCount(name) === 0) process.kill(process.pid, name);
    });
  }
}
