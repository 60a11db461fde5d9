// The agents bench against controller replicas (BENCH_REPLICAS=2 npm run bench
// -- agents): one throw-away PostgreSQL (durable settings), R controller
// processes on one database, the simulated agents dealt round-robin over
// them (agent i on replica i mod R), and every operator command sent to
// replica A, which started first and so leads the rollout engine. Agents on B
// learn of A's deploy through B's host feed (NOTIFY on the change clock, then
// changesSince). The same phases run first with one controller on SQLite and
// one on PostgreSQL, in the same run, as baselines.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { HostPhase } from "@ferry/protocol";
import { ControllerProcess } from "../../harness/controller-proc.js";
import { childrenOf } from "../../harness/postgres-procs.js";
import { startPostgres, type PostgresCluster } from "../../harness/postgres.js";
import { firstDesired, firstResults, latest, waveFigures } from "./analysis.js";
import { engineState, timedCli } from "./cli-timing.js";
import { ProcessSampler, readCpuSeconds, sleep, spread, until, type Spread } from "./measure.js";
import type { Load } from "./report.js";
import { buildClosure, hostNames, pushUnsigned, registerHosts } from "./setup.js";
import { SimFleet } from "./sim-fleet.js";

export interface ReplicaBenchConfig {
  agents: number;
  replicas: number;
  heartbeatSeconds: number;
  batch: number;
  workers: number;
  workParent: string;
}

export interface Scenario {
  label: string;
  postgres: boolean;
  replicas: number;
}

/** One controller's share: its agents' frames and its own process. */
export interface ReplicaFigures {
  agents: number;
  deployDesired: Spread;
  prefetchDesired: Spread;
  /** Every wave's activation frames, each from the moment its wave became eligible. */
  waveDesired: Spread;
  worstWaveP99: number;
  deployLoad: Load;
  rolloutLoad: Load;
  hwmMiB: number;
}

export interface ScenarioFigures {
  scenario: Scenario;
  registrationMs?: number;
  connectMs?: number;
  connected?: number;
  deploy?: { cliMs: number; rpcMs: number; active: number; doneMs: number };
  rollout?: { cliMs: number; rpcMs: number; active: number; doneMs: number; engineState: string };
  /** All PostgreSQL processes (postmaster and backends), 100 = one core, deploy through rollout. */
  postgresCpuPercent?: number;
  replicas: ReplicaFigures[];
  notes: string[];
}

const SETTLE_MS = 5000;
const note = (text: string): void => void process.stderr.write(`agents bench (replicas): ${text}\n`);

/**
 * CPU seconds of the postmaster, the backends it already reaped (cutime and
 * cstime: a pool closes idle connections) and those alive now.
 */
function postgresCpuSeconds(cluster: PostgresCluster): number {
  const pid = cluster.pid;
  if (pid === undefined) return NaN;
  let reaped = NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    reaped = (Number(fields[13]) + Number(fields[14])) / 100;
  } catch {
    return NaN;
  }
  return [pid, ...childrenOf(pid)].reduce((sum, child) => sum + (readCpuSeconds(child) || 0), reaped);
}

/** Runs the three scenarios, one after the other, each on its own fresh state. */
export async function runReplicaScenarios(config: ReplicaBenchConfig, stops: (() => Promise<unknown> | unknown)[]): Promise<ScenarioFigures[]> {
  note("building the fixture closures (cached after the first run)…");
  const [deployPath, rolloutPath] = await Promise.all([buildClosure("ferry-bench-agents-deploy"), buildClosure("ferry-bench-agents-rollout")]);
  // Durable (the server's defaults: fsync, synchronous_commit on, full_page_writes): a commit waits for its WAL flush, as SQLite's synchronous=FULL does.
  const cluster = await startPostgres({ fromTemplate: true });
  stops.push(() => cluster.stop());
  const scenarios: Scenario[] = [
    { label: "SQLite, one controller", postgres: false, replicas: 1 },
    { label: "PostgreSQL, one controller", postgres: true, replicas: 1 },
    { label: `PostgreSQL, ${config.replicas} replicas`, postgres: true, replicas: config.replicas },
  ];
  const all: ScenarioFigures[] = [];
  for (const [i, scenario] of scenarios.entries()) {
    const f: ScenarioFigures = { scenario, replicas: [], notes: [] };
    all.push(f);
    const work = mkdtempSync(join(config.workParent, "ferry-bench-replicas-"));
    const own: (() => Promise<unknown> | unknown)[] = [];
    try {
      const database = scenario.postgres ? await cluster.createDatabase(`bench_${i}`) : undefined;
      await runScenario(config, f, { work, deployPath, rolloutPath, cluster: scenario.postgres ? cluster : undefined, database }, own);
    } catch (error) {
      f.notes.push(`stopped early: ${error instanceof Error ? error.message : String(error)}`);
      note(`${scenario.label}: ${f.notes[f.notes.length - 1]}`);
    } finally {
      for (const stop of own.reverse()) await Promise.resolve(stop()).catch(() => undefined);
      if (process.env["BENCH_KEEP"]) note(`kept ${work}`);
      else rmSync(work, { recursive: true, force: true });
    }
    // The next scenario starts on a quiet machine.
    await sleep(3000);
  }
  return all;
}

interface ScenarioInputs {
  work: string;
  deployPath: string;
  rolloutPath: string;
  cluster: PostgresCluster | undefined;
  database: string | undefined;
}

async function runScenario(config: ReplicaBenchConfig, f: ScenarioFigures, inputs: ScenarioInputs, stops: (() => Promise<unknown> | unknown)[]): Promise<void> {
  const { agents: n, batch } = config;
  const replicaCount = f.scenario.replicas;
  const replicaOf = (index: number): number => index % replicaCount;
  note(`${f.scenario.label}: starting ${replicaCount} controller(s)…`);
  const controllers: ControllerProcess[] = [];
  for (let r = 0; r < replicaCount; r++) {
    mkdirSync(join(inputs.work, `replica-${r}`));
    const controller = new ControllerProcess(join(inputs.work, `replica-${r}`, "data"), {
      heartbeatIntervalSeconds: config.heartbeatSeconds,
      logLevel: "info",
      listenHost: "127.0.0.1",
      raiseFileLimit: true,
      ...(inputs.database ? { database: inputs.database } : {}),
    });
    stops.push(() => controller.stop("SIGTERM", 15_000));
    // One after the other: the first one started takes the leader lock.
    await controller.start();
    controllers.push(controller);
  }
  const a = controllers[0] as ControllerProcess;
  const env = { FERRY_CONTROLLER: a.address, FERRY_TOKEN_FILE: a.tokenFile };
  await pushUnsigned(env, [inputs.deployPath, inputs.rolloutPath]);

  const names = hostNames(n);
  const registering = performance.now();
  const tokens = await registerHosts(a.address, a.tokenFile, names);
  f.registrationMs = performance.now() - registering;
  note(`registered ${n} hosts on replica A in ${(f.registrationMs / 1000).toFixed(2)} s`);

  const fleet = await SimFleet.start({
    url: `ws://127.0.0.1:${a.httpPort}/agent`,
    agents: names.map((name, index) => ({
      index,
      name,
      token: tokens[index] as string,
      url: `ws://127.0.0.1:${(controllers[replicaOf(index)] as ControllerProcess).httpPort}/agent`,
    })),
    workers: config.workers,
    heartbeatMs: config.heartbeatSeconds * 1000,
    reconnectMaxDelayMs: 60_000,
    connectConcurrency: 256,
    agentsPerAddress: 100,
  });
  stops.push(() => fleet.stop());
  const allConnected = await until(() => fleet.connected === n, fleet.startedAtMs + (60 + n / 200) * 1000);
  f.connected = fleet.connected;
  f.connectMs = allConnected ? latest(fleet.welcomed.map(([, atMs]) => atMs)) - fleet.startedAtMs : NaN;
  note(`connected ${fleet.connected} of ${n}; settling ${SETTLE_MS / 1000} s`);
  await sleep(SETTLE_MS);

  // A quarter second: a 2,000-host deploy is over in about a second.
  const samplers = controllers.map((controller) => new ProcessSampler(controller.pid as number, 250));
  stops.push(() => samplers.forEach((sampler) => sampler.stop()));
  const pgCpuFrom = inputs.cluster ? postgresCpuSeconds(inputs.cluster) : NaN;

  note("ferry deploy to all hosts through replica A…");
  const targets = join(inputs.work, "deploy-targets");
  writeFileSync(targets, names.map((name) => `${name}=${inputs.deployPath}\n`).join(""));
  const deployFrom = Date.now();
  const deployed = await timedCli(["deploy", "--allow-unsigned"], env, inputs.work, (60 + n / 200) * 1000, targets);
  if (deployed.code !== 0) f.notes.push(`ferry deploy exited ${deployed.code}: ${deployed.stderr.trim().slice(0, 300)}`);
  const deployDesired = () => firstDesired(fleet.desired, { activate: true, rolloutId: "", sinceMs: deployFrom });
  const deployActive = () => firstResults(fleet.results, deployDesired(), HostPhase.HOST_PHASE_ACTIVE);
  await until(() => deployActive().size === n, deployFrom + (60 + n / 200) * 1000, 500);
  const deployTo = Date.now();
  samplers.forEach((sampler) => sampler.mark());
  const active = deployActive();
  f.deploy = { cliMs: deployed.cliMs, rpcMs: deployed.rpcMs, active: active.size, doneMs: active.size === n ? latest(active.values()) - deployFrom : NaN };
  const deployArrivals = deployDesired();
  await sleep(3000);

  note(`ferry rollout start through replica A, waves of ${batch}…`);
  const manifest = join(inputs.work, "rollout.json");
  writeFileSync(manifest, JSON.stringify({ hosts: Object.fromEntries(names.map((name) => [name, inputs.rolloutPath])) }));
  const rolloutFrom = Date.now();
  const started = await timedCli(
    ["rollout", "start", "--manifest", manifest, "--batch", String(batch), "--max-unavailable", String(batch), "--allow-unsigned", "--json"],
    env,
    inputs.work,
    (120 + n / 50) * 1000,
  );
  let rolloutId = "";
  try {
    rolloutId = (JSON.parse(started.stdout) as { rollout: { id: string } }).rollout.id;
  } catch {
    f.notes.push(`ferry rollout start exited ${started.code}: ${(started.stderr + started.stdout).trim().slice(0, 300)}`);
  }
  const activations = () => firstDesired(fleet.desired, { activate: true, rolloutId, sinceMs: rolloutFrom });
  const rolloutActive = () => firstResults(fleet.results, activations(), HostPhase.HOST_PHASE_ACTIVE);
  if (rolloutId) await until(() => rolloutActive().size === n, rolloutFrom + (120 + n / 50) * 1000, 500);
  const rolloutTo = Date.now();
  samplers.forEach((sampler) => sampler.mark());
  const pgCpuTo = inputs.cluster ? postgresCpuSeconds(inputs.cluster) : NaN;
  f.postgresCpuPercent = ((pgCpuTo - pgCpuFrom) / ((rolloutTo - deployFrom) / 1000)) * 100;

  const prefetches = firstDesired(fleet.desired, { activate: false, rolloutId, sinceMs: rolloutFrom });
  const fetched = firstResults(fleet.results, prefetches, HostPhase.HOST_PHASE_FETCHED);
  const activeAt = rolloutActive();
  const arrivals = activations();
  const waves = waveFigures({ total: n, batch, prefetchDoneAtMs: fetched.size === n ? latest(fetched.values()) : NaN, activations: arrivals, activeAt });
  const engine = rolloutId ? await engineState(rolloutId, env) : "";
  f.rollout = {
    cliMs: started.cliMs,
    rpcMs: started.rpcMs,
    active: activeAt.size,
    doneMs: activeAt.size === n ? latest(activeAt.values()) - rolloutFrom : NaN,
    engineState: engine,
  };

  const waveOf = (index: number): number => Math.floor(index / batch);
  for (let r = 0; r < replicaCount; r++) {
    const mine = (index: number): boolean => replicaOf(index) === r;
    const from = (map: ReadonlyMap<number, { atMs: number }>, sinceMs: (index: number) => number): number[] =>
      [...map].filter(([index]) => mine(index)).map(([index, { atMs }]) => atMs - sinceMs(index));
    // Per wave, only this replica's agents of that wave.
    const perWave = waves.map((wave, w) =>
      Number.isNaN(wave.eligibleAtMs)
        ? []
        : [...arrivals].filter(([index]) => mine(index) && waveOf(index) === w).map(([, { atMs }]) => atMs - wave.eligibleAtMs),
    );
    const sampler = samplers[r] as ProcessSampler;
    f.replicas.push({
      agents: names.filter((_, index) => mine(index)).length,
      deployDesired: spread(from(deployArrivals, () => deployFrom)),
      prefetchDesired: spread(from(prefetches, () => rolloutFrom)),
      waveDesired: spread(perWave.flat()),
      worstWaveP99: Math.max(...perWave.map((values) => spread(values).p99).filter((p99) => !Number.isNaN(p99))),
      deployLoad: sampler.window(deployFrom, deployTo),
      rolloutLoad: sampler.window(rolloutFrom, rolloutTo),
      hwmMiB: sampler.mark().hwmMiB,
    });
  }
  note(`${f.scenario.label}: deploy RPC ${(f.deploy.rpcMs / 1000).toFixed(2)} s, StartRollout ${(f.rollout.rpcMs / 1000).toFixed(2)} s, engine ${engine}`);
}
