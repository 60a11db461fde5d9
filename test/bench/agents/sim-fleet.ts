// The bench's side of the simulated agents: worker processes (sim-agent.ts),
// each holding a share of the agents, and what they reported, gathered here.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { withRaisedFileLimit } from "../../harness/controller-proc.js";
import type { AtTuple, DesiredTuple, FromWorker, RefusalTuple, ResultTuple, RttTuple, SimAgentSpec, StartMessage, ToWorker } from "./messages.js";

const WORKER = fileURLToPath(new URL("./sim-agent.ts", import.meta.url));

export interface SimFleetOptions {
  url: string;
  agents: SimAgentSpec[];
  workers: number;
  heartbeatMs: number;
  reconnectMaxDelayMs: number;
  connectConcurrency: number;
  agentsPerAddress: number;
}

export class SimFleet {
  readonly desired: DesiredTuple[] = [];
  readonly results: ResultTuple[] = [];
  readonly welcomed: AtTuple[] = [];
  readonly closed: AtTuple[] = [];
  readonly rtt: RttTuple[] = [];
  readonly refusals: RefusalTuple[] = [];
  private readonly online: Uint8Array;
  private onlineCount = 0;
  private readonly workers: { child: ChildProcess; agents: Set<number> }[] = [];
  /** When the workers were told to connect. */
  startedAtMs = NaN;

  private constructor(readonly size: number) {
    this.online = new Uint8Array(size);
  }

  /** Starts the workers; once all are ready (`startedAtMs`) they begin connecting. */
  static async start(options: SimFleetOptions): Promise<SimFleet> {
    const fleet = new SimFleet(options.agents.length);
    const share = Math.ceil(options.agents.length / options.workers);
    const shares = Array.from({ length: options.workers }, (_, w) => options.agents.slice(w * share, (w + 1) * share));
    await Promise.all(shares.map((agents) => fleet.startWorker(agents)));
    fleet.startedAtMs = Date.now();
    fleet.workers.forEach(({ child }, w) => {
      const start: StartMessage = {
        type: "start",
        url: options.url,
        agents: shares[w] as SimAgentSpec[],
        heartbeatMs: options.heartbeatMs,
        reconnectMaxDelayMs: options.reconnectMaxDelayMs,
        connectConcurrency: options.connectConcurrency,
        agentsPerAddress: options.agentsPerAddress,
      };
      child.send(start satisfies ToWorker);
    });
    return fleet;
  }

  private async startWorker(agents: SimAgentSpec[]): Promise<void> {
    const [command, ...args] = withRaisedFileLimit([process.execPath, "--import", "tsx", WORKER]);
    const child = spawn(command as string, args, { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    this.workers.push({ child, agents: new Set(agents.map((agent) => agent.index)) });
    await new Promise<void>((resolve, reject) => {
      child.once("error", reject);
      child.once("exit", (code) => reject(new Error(`simulated-agent worker exited (${code}) before it was ready`)));
      child.on("message", (message: FromWorker) => {
        if (message.type === "ready") resolve();
        else this.absorb(message);
      });
    });
  }

  private absorb(message: Extract<FromWorker, { type: "events" }>): void {
    for (const [index] of message.welcomed) {
      if (this.online[index] === 0) this.onlineCount++;
      this.online[index] = 1;
    }
    for (const [index] of message.closed) {
      if (this.online[index] === 1) this.onlineCount--;
      this.online[index] = 0;
    }
    const append = <T>(to: T[], from: T[]): void => {
      for (const item of from) to.push(item);
    };
    append(this.desired, message.desired);
    append(this.results, message.results);
    append(this.welcomed, message.welcomed);
    append(this.closed, message.closed);
    append(this.rtt, message.rtt);
    append(this.refusals, message.refusals);
  }

  get connected(): number {
    return this.onlineCount;
  }

  isOnline(index: number): boolean {
    return this.online[index] === 1;
  }

  get pids(): number[] {
    return this.workers.map((worker) => worker.child.pid as number);
  }

  drop(indices: number[]): void {
    for (const worker of this.workers) {
      const mine = indices.filter((index) => worker.agents.has(index));
      if (mine.length > 0) worker.child.send({ type: "drop", indices: mine } satisfies ToWorker);
    }
  }

  /** Stops every worker (killed if it does not exit within 5 s). */
  async stop(): Promise<void> {
    await Promise.all(
      this.workers.map(async ({ child }) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((resolve) => child.once("exit", resolve));
        if (child.connected) child.send({ type: "stop" } satisfies ToWorker);
        else child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
        await exited;
        clearTimeout(timer);
      }),
    );
  }
}
