import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ControllerProcess, type ControllerSettings } from "./controller-proc.js";
import { ferry, generateSigningKey, mustFerry, type CliResult } from "./ferry-cli.js";
import { SimHost } from "./sim-host.js";

export interface FleetOptions {
  controller?: ControllerSettings;
  /** The CA the CLI and every agent trust: set with `controller.tls`, so that all traffic runs over TLS. */
  caFile?: string;
}

export interface SigningKey {
  name: string;
  secretFile: string;
  publicKey: string;
}

/**
 * A controller plus simulated hosts, each running a real agent: the unit of
 * every end-to-end test and of the demo. `close()` removes every namespace,
 * process and file it made.
 */
export class Fleet {
  readonly hosts = new Map<string, SimHost>();
  readonly controller: ControllerProcess;
  key!: SigningKey;

  private constructor(
    readonly dir: string,
    readonly options: FleetOptions,
  ) {
    this.controller = new ControllerProcess(join(dir, "controller"), options.controller);
  }

  /** A fleet in a new directory; `prepare` runs first with that directory (to make certificates in it). */
  static async start(label: string, prepare: (dir: string) => Promise<FleetOptions> | FleetOptions = () => ({})): Promise<Fleet> {
    const dir = mkdtempSync(join(tmpdir(), `ferry-${label}-`));
    const fleet = new Fleet(dir, await prepare(dir));
    try {
      await fleet.controller.start();
      fleet.key = await fleet.generateKey("ferry-test-1");
    } catch (error) {
      await fleet.close();
      throw error;
    }
    return fleet;
  }

  get env(): Record<string, string> {
    return {
      FERRY_CONTROLLER: this.controller.address,
      FERRY_TOKEN_FILE: this.controller.tokenFile,
      ...(this.options.caFile ? { FERRY_CA_FILE: this.options.caFile } : {}),
    };
  }

  /** The CLI, already pointed at this fleet's controller. */
  cli(args: readonly string[], timeoutMs?: number): Promise<CliResult> {
    return ferry(args, this.env, timeoutMs);
  }

  mustCli(args: readonly string[], timeoutMs?: number): Promise<CliResult> {
    return mustFerry(args, this.env, timeoutMs);
  }

  async generateKey(name: string): Promise<SigningKey> {
    const keyDir = join(this.dir, "keys");
    mkdirSync(keyDir, { recursive: true });
    return generateSigningKey(keyDir, name);
  }

  /** Registers a host with the controller, creates its namespace and starts its agent. */
  async addHost(name: string, options: { tags?: string[]; agentConfig?: Record<string, unknown>; start?: boolean } = {}): Promise<SimHost> {
    const host = await SimHost.create(name, join(this.dir, "hosts"));
    this.hosts.set(name, host);
    const added = await this.mustCli(["host", "add", name, ...(options.tags ?? []).flatMap((tag) => ["--tag", tag]), "--token-out", "-", "--json"]);
    host.writeAgentConfig({
      controllerPort: this.controller.httpPort,
      token: added.json<{ agentToken: string }>().agentToken,
      trustedPublicKeys: [this.key.publicKey],
      ...(this.options.caFile ? { caFile: this.options.caFile } : {}),
      ...(options.agentConfig ? { extra: options.agentConfig } : {}),
    });
    if (options.start !== false) host.startAgent();
    return host;
  }

  host(name: string): SimHost {
    const host = this.hosts.get(name);
    if (!host) throw new Error(`no simulated host ${name}`);
    return host;
  }

  /** `ferry cache push`, signed by `key`, or unsigned (--unsigned) when `key` is null. */
  async push(paths: readonly string[], key: SigningKey | null = this.key): Promise<void> {
    await this.mustCli(["cache", "push", ...paths, ...(key ? ["--signing-key-file", key.secretFile] : ["--unsigned"])]);
  }

  readAdminToken(): string {
    return readFileSync(this.controller.tokenFile, "utf8").trim();
  }

  async close(): Promise<void> {
    await Promise.all([...this.hosts.values()].map((host) => host.destroy()));
    await this.controller.stop("SIGKILL");
    if (!process.env["FERRY_KEEP_TEST_DIRS"]) rmSync(this.dir, { recursive: true, force: true });
  }
}
