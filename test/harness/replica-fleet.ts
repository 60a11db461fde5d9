// Controller replicas as real `ferry controller` processes on one throw-away
// PostgreSQL database, and simulated hosts whose agents list some of them
// (controllerUrls). The first replica's admin.token is the one the database
// holds; every other replica starts with a copy of it, as an operator would
// hand it over. The replicas share one cache directory (--cache-dir), so a
// closure pushed through one is served by all.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.js";
import { ControllerProcess } from "./controller-proc.js";
import { waitFor } from "./exec.js";
import { ferry, generateSigningKey, mustFerry, type CliResult } from "./ferry-cli.js";
import type { SigningKey } from "./fleet.js";
import { startPostgres, type PostgresCluster } from "./postgres.js";
import { SimHost } from "./sim-host.js";

const LEADS = "this replica drives rollouts";
const RESIGNS = "this replica no longer drives rollouts";

export class ReplicaFleet {
  readonly hosts = new Map<string, SimHost>();
  readonly replicas: ControllerProcess[] = [];
  key!: SigningKey;
  /** Where each replica's log stood when it last started: what it logged before belongs to an earlier life. */
  private readonly logOffsets = new Map<ControllerProcess, number>();

  private constructor(
    readonly dir: string,
    readonly cluster: PostgresCluster,
    readonly database: string,
  ) {}

  /** A durable PostgreSQL cluster, one database, and `count` replicas (not started: see startReplica). */
  static async create(label: string, count: number): Promise<ReplicaFleet> {
    const dir = mkdtempSync(join(tmpdir(), `ferry-${label}-`));
    const cluster = await startPostgres();
    let fleet: ReplicaFleet | undefined;
    try {
      fleet = new ReplicaFleet(dir, cluster, await cluster.createDatabase("ferry"));
      for (let index = 0; index < count; index++) {
        const name = String.fromCharCode("a".charCodeAt(0) + index);
        mkdirSync(join(dir, `replica-${name}`));
        // One cache directory for all, as replicas on one machine (or one NFS share) run it.
        const replica = new ControllerProcess(join(dir, `replica-${name}`, "data"), { database: fleet.database, cacheDir: join(dir, "cache") });
        replica.httpPort = await freePort("0.0.0.0");
        fleet.replicas.push(replica);
      }
      const keyDir = join(dir, "keys");
      mkdirSync(keyDir);
      fleet.key = await generateSigningKey(keyDir, "ferry-test-1");
    } catch (error) {
      if (fleet) await fleet.close();
      else await cluster.stop();
      throw error;
    }
    return fleet;
  }

  replica(index: number): ControllerProcess {
    const replica = this.replicas[index];
    if (!replica) throw new Error(`no replica ${index}`);
    return replica;
  }

  running(replica: ControllerProcess): boolean {
    return replica.pid !== undefined;
  }

  /** Starts (or starts again) a replica on its own port; any but the first gets a copy of the first one's admin.token. */
  async startReplica(replica: ControllerProcess): Promise<void> {
    const first = this.replica(0);
    if (replica !== first && !existsSync(replica.tokenFile)) {
      mkdirSync(replica.dataDir, { recursive: true });
      copyFileSync(first.tokenFile, replica.tokenFile);
    }
    this.logOffsets.set(replica, replica.logText().length);
    await replica.start();
  }

  /** The lines this replica logged since its last start. */
  private currentLog(replica: ControllerProcess): string[] {
    return replica
      .logText()
      .slice(this.logOffsets.get(replica) ?? 0)
      .split("\n");
  }

  /** Whether the replica runs and, by its own log, holds the leader lock now. */
  leads(replica: ControllerProcess): boolean {
    if (!this.running(replica)) return false;
    const lines = this.currentLog(replica);
    const gained = lines.findLastIndex((line) => line.includes(LEADS));
    return gained >= 0 && gained > lines.findLastIndex((line) => line.includes(RESIGNS));
  }

  /** Waits until some running replica leads; that replica. */
  async leader(timeoutMs = 30_000): Promise<ControllerProcess> {
    return waitFor("a replica to lead", () => this.replicas.find((replica) => this.leads(replica)), timeoutMs, 100);
  }

  env(replica: ControllerProcess): Record<string, string> {
    return { FERRY_CONTROLLER: replica.address, FERRY_TOKEN_FILE: replica.tokenFile };
  }

  cli(replica: ControllerProcess, args: readonly string[], timeoutMs?: number): Promise<CliResult> {
    return ferry(args, this.env(replica), timeoutMs);
  }

  mustCli(replica: ControllerProcess, args: readonly string[], timeoutMs?: number): Promise<CliResult> {
    return mustFerry(args, this.env(replica), timeoutMs, ` (on ${replica.address})`);
  }

  /** Signs and pushes the closures through one running replica into the shared cache. */
  async push(paths: readonly string[]): Promise<void> {
    const replica = this.replicas.find((r) => this.running(r));
    if (!replica) throw new Error("no replica is running to push through");
    await this.mustCli(replica, ["cache", "push", ...paths, "--signing-key-file", this.key.secretFile]);
  }

  /** Registers a host through `via`, creates its namespace and starts its agent, which knows only the replicas in `urls`. */
  async addHost(name: string, via: ControllerProcess, urls: readonly ControllerProcess[], agentConfig: Record<string, unknown> = {}): Promise<SimHost> {
    const host = await SimHost.create(name, join(this.dir, "hosts"));
    this.hosts.set(name, host);
    const added = await this.mustCli(via, ["host", "add", name, "--token-out", "-", "--json"]);
    host.writeAgentConfig({
      controllerPort: via.httpPort,
      token: added.json<{ agentToken: string }>().agentToken,
      trustedPublicKeys: [this.key.publicKey],
      extra: {
        controllerUrl: undefined,
        controllerUrls: urls.map((replica) => this.agentUrl(host, replica)),
        substituters: urls.map((replica) => `http://${host.gateway}:${replica.httpPort}/cache`),
        ...agentConfig,
      },
    });
    host.startAgent();
    return host;
  }

  agentUrl(host: SimHost, replica: ControllerProcess): string {
    return `ws://${host.gateway}:${replica.httpPort}/agent`;
  }

  /** The replica the host's agent last connected to, by its log. */
  connectedTo(host: SimHost): ControllerProcess | undefined {
    const url = host
      .agentLogText()
      .split("\n")
      .filter((line) => line.includes('"connected to controller"'))
      .map((line) => (JSON.parse(line) as { url: string }).url)
      .at(-1);
    return this.replicas.find((replica) => url === this.agentUrl(host, replica));
  }

  host(name: string): SimHost {
    const host = this.hosts.get(name);
    if (!host) throw new Error(`no simulated host ${name}`);
    return host;
  }

  async close(): Promise<void> {
    await Promise.all([...this.hosts.values()].map((host) => host.destroy()));
    for (const replica of this.replicas) await replica.stop("SIGKILL");
    await this.cluster.stop();
    if (!process.env["FERRY_KEEP_TEST_DIRS"]) rmSync(this.dir, { recursive: true, force: true });
  }
}
