// Benchmark (not a timing test): one real controller (`ferry controller`, its
// own process) holding N simulated agents that speak the real agent protocol
// from worker processes (agents/sim-agent.ts). Measures connecting, the
// controller's memory and CPU, heartbeat round trips, publish→desired frame
// latency of a `ferry deploy` and of each wave of a `ferry rollout start`, a
// reconnect storm during the rollout, a controller restart, and one real
// `ferry agent`'s idle footprint. Every phase has a deadline and reports
// what it reached. Writes its section of test/bench/RESULTS.md.
// BENCH_AGENTS (10000), BENCH_HEARTBEAT_SECONDS (10), BENCH_IDLE_SECONDS (30),
// BENCH_STORM (1000), BENCH_BATCH (a quarter of the hosts), BENCH_WORKERS,
// BENCH_WORK_DIR (where the controller's state goes), BENCH_KEEP=1 (keep it),
// BENCH_CPU_PROF=DIR (the controller's CPU profile), BENCH_REPLICAS=N or
// --replicas N (agents-replicas.ts instead).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { HostPhase } from "@ferry/protocol";
import { ControllerProcess } from "../harness/controller-proc.js";
import { mustExec } from "../harness/exec.js";
import { firstDesired, firstResults, latencies, latest, recovery, waveFigures } from "./agents/analysis.js";
import { engineState, timedCli } from "./agents/cli-timing.js";
import { ProcessSampler, envNumber, fsyncMs, sleep, spread, until } from "./agents/measure.js";
import { startIdleAgents, type IdleAgents } from "./agents/real-agent.js";
import { seconds, spreadText, table, waveTable, type Figures } from "./agents/report.js";
import { buildClosure, hostNames, pushUnsigned, registerHosts } from "./agents/setup.js";
import { SimFleet } from "./agents/sim-fleet.js";
import { runReplicasBench } from "./agents-replicas.js";
import { writeResultsSection } from "./results.js";

const HERE = fileURLToPath(new URL(".", import.meta.url));
/** Where the controller's state lives: the default temporary directory, or BENCH_WORK_DIR (e.g. /dev/shm, to take fsync out of the figures). */
const WORK_PARENT = process.env["BENCH_WORK_DIR"] ?? tmpdir();
const READING_HEADING = "### Reading these figures";

const N = Math.round(envNumber("BENCH_AGENTS", 10_000));
const HEARTBEAT_SECONDS = envNumber("BENCH_HEARTBEAT_SECONDS", 10);
const IDLE_SECONDS = envNumber("BENCH_IDLE_SECONDS", 30);
const STORM = Math.min(Math.round(envNumber("BENCH_STORM", 1000)), Math.floor(N / 3));
const BATCH = Math.round(envNumber("BENCH_BATCH", Math.ceil(N / 4)));
/** The real agent's default reconnectMaxDelay. */
const RECONNECT_MAX_DELAY_MS = 60_000;
const REAL_AGENT_IDLE_SECONDS = 60;
/** Phase deadlines grow with the fleet. */
const CONNECT_DEADLINE_S = Math.round(60 + N / 200);
const DEPLOY_DEADLINE_S = Math.round(60 + N / 200);
const ROLLOUT_DEADLINE_S = Math.round(120 + N / 50);
const STORM_DEADLINE_S = 60;
const RESTART_DEADLINE_S = Math.round(120 + N / 1000);
const OVERALL_DEADLINE_MS = (20 * 60 + N / 20) * 1000;

const note = (text: string): void => void process.stderr.write(`agents bench: ${text}\n`);

async function hardFileLimit(): Promise<number> {
  return Number((await mustExec(["sh", "-c", "ulimit -Hn"])).trim());
}

async function runPhases(f: Figures, work: string, stops: (() => Promise<unknown> | unknown)[]): Promise<void> {
  note("building the fixture closures (cached after the first run)…");
  const [deployPath, rolloutPath] = await Promise.all([buildClosure("ferry-bench-agents-deploy"), buildClosure("ferry-bench-agents-rollout")]);
  mkdirSync(join(work, "controller"));
  const controller = new ControllerProcess(join(work, "controller", "data"), {
    heartbeatIntervalSeconds: HEARTBEAT_SECONDS,
    logLevel: "info",
    listenHost: "127.0.0.1",
    raiseFileLimit: true,
    nodeArgs: [
      // BENCH_CPU_PROF=DIR: the controller writes a V8 CPU profile there when it exits.
      ...(process.env["BENCH_CPU_PROF"] ? ["--cpu-prof", `--cpu-prof-dir=${process.env["BENCH_CPU_PROF"]}`] : []),
      // BENCH_CONTROLLER_NODE_ARGS="--max-old-space-size=512": V8 flags for the controller, e.g. to tell live memory from garbage.
      ...(process.env["BENCH_CONTROLLER_NODE_ARGS"]?.split(" ").filter(Boolean) ?? []),
    ],
  });
  stops.push(() => controller.stop("SIGKILL"));
  await controller.start();
  const env = { FERRY_CONTROLLER: controller.address, FERRY_TOKEN_FILE: controller.tokenFile };
  await pushUnsigned(env, [deployPath, rolloutPath]);

  const names = hostNames(N);
  note(`registering ${N} hosts…`);
  const registering = performance.now();
  const tokens = await registerHosts(controller.address, controller.tokenFile, [
    ...names,
    "bench-real-agent",
    "bench-minimal-client",
    "bench-minimal-client-flagged",
  ]);
  f.registrationMs = performance.now() - registering;
  note(`registered in ${seconds(f.registrationMs)}`);
  const agentUrl = `ws://127.0.0.1:${controller.httpPort}/agent`;

  // Measured alongside the phases below: an idle agent's footprint does not depend on the controller's load.
  const idleAgents: IdleAgents = startIdleAgents({
    dir: join(work, "real-agent"),
    agentUrl,
    agent: { name: "bench-real-agent", token: tokens[N] as string },
    baseline: { name: "bench-minimal-client", token: tokens[N + 1] as string },
    flaggedBaseline: { name: "bench-minimal-client-flagged", token: tokens[N + 2] as string },
    heartbeatSeconds: HEARTBEAT_SECONDS,
    idleSeconds: REAL_AGENT_IDLE_SECONDS,
  });
  stops.push(() => idleAgents.stop());
  const realAgent = idleAgents.measure();

  let sampler = new ProcessSampler(controller.pid as number);
  stops.push(() => sampler.stop());
  note(`connecting ${N} simulated agents from ${f.workers} worker process(es)…`);
  // Only what the connections wrote: registering the hosts logged its own lines.
  const linesBeforeConnect = controller.logText().split("\n").length;
  const fleet = await SimFleet.start({
    url: agentUrl,
    agents: names.map((name, index) => ({ index, name, token: tokens[index] as string })),
    workers: f.workers,
    heartbeatMs: HEARTBEAT_SECONDS * 1000,
    reconnectMaxDelayMs: RECONNECT_MAX_DELAY_MS,
    connectConcurrency: 256,
    agentsPerAddress: 100,
  });
  stops.push(() => fleet.stop());
  const allConnected = await until(() => fleet.connected === N, fleet.startedAtMs + CONNECT_DEADLINE_S * 1000);
  const logLines = controller.logText().split("\n").length - linesBeforeConnect;
  f.connect = {
    allMs: allConnected ? latest(fleet.welcomed.map(([, atMs]) => atMs)) - fleet.startedAtMs : NaN,
    connected: fleet.connected,
    deadlineS: CONNECT_DEADLINE_S,
    logLinesPerAgent: logLines / N,
  };
  note(`connected ${fleet.connected} of ${N} in ${seconds(f.connect.allMs)}`);
  const connectedAtMs = Date.now();

  note(`idle for ${IDLE_SECONDS} s…`);
  const idleFrom = Date.now();
  await sleep(IDLE_SECONDS * 1000);
  sampler.mark();
  const idleTo = Date.now();
  const rttIn = (from: number, to: number) => spread(fleet.rtt.filter(([atMs]) => atMs >= from && atMs <= to).map(([, rtt]) => rtt));
  f.idle = { seconds: IDLE_SECONDS, ...sampler.window(idleFrom, idleTo), rtt: rttIn(idleFrom, idleTo) };
  note(`idle: ${f.idle.maxRssMiB.toFixed(0)} MiB, ${f.idle.cpuPercent.toFixed(1)} % CPU, RTT ${spreadText(f.idle.rtt)}`);

  note(`ferry deploy to ${N} hosts…`);
  const targets = join(work, "deploy-targets");
  writeFileSync(targets, names.map((name) => `${name}=${deployPath}\n`).join(""));
  const deployFrom = Date.now();
  const deployed = await timedCli(["deploy", "--allow-unsigned"], env, work, DEPLOY_DEADLINE_S * 1000, targets);
  if (deployed.code !== 0) f.notes.push(`ferry deploy exited ${deployed.code}: ${deployed.stderr.trim().slice(0, 300)}`);
  const deployDesired = () => firstDesired(fleet.desired, { activate: true, rolloutId: "", sinceMs: deployFrom });
  const deployActive = () => firstResults(fleet.results, deployDesired(), HostPhase.HOST_PHASE_ACTIVE);
  await until(() => deployActive().size === N, deployFrom + DEPLOY_DEADLINE_S * 1000, 1000);
  const deployTo = Date.now();
  sampler.mark();
  const active = deployActive();
  f.deploy = {
    cliMs: deployed.cliMs,
    rpcMs: deployed.rpcMs,
    desired: latencies(deployDesired(), deployFrom),
    active: active.size,
    doneMs: active.size === N ? latest(active.values()) - deployFrom : NaN,
    load: sampler.window(deployFrom, deployTo),
  };
  note(`deploy: RPC ${seconds(f.deploy.rpcMs)}, desired ${spreadText(f.deploy.desired)}, ${active.size} active`);
  await sleep(5000);

  note(`ferry rollout start over ${N} hosts, waves of ${BATCH}; ${STORM} agents drop their link once it started…`);
  const manifest = join(work, "rollout.json");
  writeFileSync(manifest, JSON.stringify({ hosts: Object.fromEntries(names.map((name) => [name, rolloutPath])) }));
  const rolloutFrom = Date.now();
  const started = await timedCli(
    ["rollout", "start", "--manifest", manifest, "--batch", String(BATCH), "--max-unavailable", String(BATCH), "--allow-unsigned", "--json"],
    env,
    work,
    ROLLOUT_DEADLINE_S * 1000,
  );
  let rolloutId = "";
  try {
    rolloutId = (JSON.parse(started.stdout) as { rollout: { id: string } }).rollout.id;
  } catch {
    // With --json, the CLI prints its error as JSON on stdout.
    f.notes.push(`ferry rollout start exited ${started.code}: ${(started.stderr + started.stdout).trim().slice(0, 300)}`);
    // The CLI gives up after 30 s; the controller may have started the rollout all the same, and
    // then names it in the desired frames it sends (asking it with the CLI would time out too).
    const named = () => fleet.desired.find(([, atMs, , , id]) => atMs >= rolloutFrom && id !== "")?.[4];
    await until(() => named() !== undefined, rolloutFrom + ROLLOUT_DEADLINE_S * 1000, 1000);
    rolloutId = named() ?? "";
    if (rolloutId) f.notes.push(`the controller started rollout ${rolloutId} all the same (named by its desired frames)`);
  }
  const stormFrom = Date.now();
  const stormed = new Set(Array.from({ length: STORM }, (_, i) => Math.floor((i * N) / STORM)));
  if (rolloutId) fleet.drop([...stormed]);
  const stormDone = until(() => recovery(fleet.welcomed, stormed, N, stormFrom).back === STORM, stormFrom + STORM_DEADLINE_S * 1000, 500);
  const activations = () => firstDesired(fleet.desired, { activate: true, rolloutId, sinceMs: rolloutFrom });
  const rolloutActive = () => firstResults(fleet.results, activations(), HostPhase.HOST_PHASE_ACTIVE);
  if (rolloutId) await until(() => rolloutActive().size === N, rolloutFrom + ROLLOUT_DEADLINE_S * 1000, 1000);
  const rolloutTo = Date.now();
  sampler.mark();
  await stormDone;
  if (rolloutId) f.storm = recovery(fleet.welcomed, stormed, N, stormFrom);
  const prefetches = firstDesired(fleet.desired, { activate: false, rolloutId, sinceMs: rolloutFrom });
  const fetched = firstResults(fleet.results, prefetches, HostPhase.HOST_PHASE_FETCHED);
  const prefetchDoneAt = fetched.size === N ? latest(fetched.values()) : NaN;
  const rolloutActiveAt = rolloutActive();
  const engine = rolloutId ? await engineState(rolloutId, env) : "";
  f.rollout = {
    id: rolloutId,
    startedAtMs: rolloutFrom,
    cliMs: started.cliMs,
    rpcMs: started.rpcMs,
    prefetch: latencies(prefetches, rolloutFrom),
    prefetchDoneMs: prefetchDoneAt - rolloutFrom,
    waves: waveFigures({ total: N, batch: BATCH, prefetchDoneAtMs: prefetchDoneAt, activations: activations(), activeAt: rolloutActiveAt }),
    active: rolloutActiveAt.size,
    doneMs: rolloutActiveAt.size === N ? latest(rolloutActiveAt.values()) - rolloutFrom : NaN,
    load: sampler.window(rolloutFrom, rolloutTo),
    rtt: rttIn(rolloutFrom, rolloutTo),
    engineState: engine,
  };
  f.rttThroughout = rttIn(connectedAtMs, rolloutTo);
  note(`rollout: StartRollout ${seconds(f.rollout.rpcMs)}, ${f.rollout.active} active; engine: ${engine}`);

  f.hwmMiB = sampler.mark().hwmMiB;
  sampler.stop();
  note("controller restart: SIGTERM, then start again…");
  const refusalsBefore = fleet.refusals.length;
  const sigtermAt = Date.now();
  const stop = await controller.stop("SIGTERM", 30_000);
  const restartAt = Date.now();
  await controller.start();
  sampler = new ProcessSampler(controller.pid as number);
  await until(() => recovery(fleet.welcomed, "all", N, restartAt).back === N, restartAt + RESTART_DEADLINE_S * 1000, 500);
  f.restart = {
    stop,
    back: recovery(fleet.welcomed, "all", N, restartAt),
    sigtermToStartMs: restartAt - sigtermAt,
    fatalRefusals: fleet.refusals.slice(refusalsBefore).filter(([, , fatal]) => fatal === 1).length,
    deadlineS: RESTART_DEADLINE_S,
  };
  const codes = new Map<string, number>();
  for (const [, code, fatal] of fleet.refusals.slice(refusalsBefore))
    codes.set(`${code}${fatal ? " (fatal)" : ""}`, (codes.get(`${code}${fatal ? " (fatal)" : ""}`) ?? 0) + 1);
  if (codes.size > 0) f.notes.push(`refusals during the restart: ${[...codes].map(([code, count]) => `${count} × ${code}`).join(", ")}`);
  note(`restart: stopped in ${seconds(stop.ms)}${stop.exited ? "" : " (killed)"}, ${f.restart.back.back} of ${N} back`);

  f.realAgent = await realAgent;
  if (f.realAgent.failure) f.notes.push(`an idle agent process exited: ${f.realAgent.failure.trim()}`);
}

export async function runAgentsBench(): Promise<void> {
  if (process.env["BENCH_REPLICAS"]) return runReplicasBench();
  const fileLimit = await hardFileLimit();
  // A worker keeps some descriptors for itself; the controller needs one per agent.
  const workers = Math.round(envNumber("BENCH_WORKERS", Math.max(N > 2000 ? 2 : 1, Math.ceil(N / (fileLimit - 1000)))));
  const f: Figures = { agents: N, workers, heartbeatSeconds: HEARTBEAT_SECONDS, batch: BATCH, fileLimit, notes: [] };
  if (N + 1000 > fileLimit) {
    f.notes.push(`the open-file hard limit is ${fileLimit}: the controller cannot hold ${N} sockets (raise it as root: ulimit -Hn / prlimit)`);
    note(f.notes[f.notes.length - 1] as string);
  }
  const work = mkdtempSync(join(WORK_PARENT, "ferry-bench-agents-"));
  f.fsyncMs = fsyncMs(work);
  const stops: (() => Promise<unknown> | unknown)[] = [];
  const stopAll = async (): Promise<void> => {
    for (const stop of stops.reverse()) await Promise.resolve(stop()).catch(() => undefined);
    stops.length = 0;
  };
  const overall = setTimeout(() => {
    note(`overall deadline of ${OVERALL_DEADLINE_MS / 60_000} min reached; stopping everything`);
    void stopAll().then(() => process.exit(1));
  }, OVERALL_DEADLINE_MS);
  const startedAt = new Date();
  try {
    await runPhases(f, work, stops);
  } catch (error) {
    f.notes.push(`stopped early: ${error instanceof Error ? error.message : String(error)}`);
    note(f.notes[f.notes.length - 1] as string);
  } finally {
    clearTimeout(overall);
    await stopAll();
    if (process.env["BENCH_KEEP"]) note(`kept ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
  report(f, startedAt);
}

function report(f: Figures, startedAt: Date): void {
  const figures = table(f);
  const waves = waveTable(f);
  process.stdout.write(`\n${figures}\n\n${waves}\n${f.notes.map((n) => `note: ${n}\n`).join("")}`);
  const vars = [...(process.env["BENCH_AGENTS"] ? [`BENCH_AGENTS=${N}`] : []), ...(process.env["BENCH_WORK_DIR"] ? [`BENCH_WORK_DIR=${WORK_PARENT}`] : [])];
  const command = [...vars, "npm run bench -- agents"].join(" ");
  const file = join(HERE, "RESULTS.md");
  const heading = `## Agents: one controller, ${N.toLocaleString("en-US")} simulated agents${process.env["BENCH_WORK_DIR"] ? `, state in ${WORK_PARENT}` : ""}`;
  writeResultsSection(
    file,
    heading,
    `Command: \`${command}\` (runs \`node --import tsx test/bench/run.ts agents\`; \`BENCH_AGENTS\` (10000; 50000 for the big run, 300 for a quick one), \`BENCH_HEARTBEAT_SECONDS\` (10), \`BENCH_IDLE_SECONDS\` (30), \`BENCH_STORM\` (1000), \`BENCH_BATCH\` (a quarter of the hosts), \`BENCH_WORKERS\`).

- Machine: ${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, shared with other jobs (load ${loadavg()
      .map((v) => v.toFixed(1))
      .join(
        " ",
      )} at the end); Node ${process.version}; open-file hard limit ${f.fileLimit}; a 4 KiB write + fsync in the controller's directory takes ${f.fsyncMs?.toFixed(2)} ms (median of 50; SQLite's durable commits wait for it); run ${startedAt.toISOString()}.
- Controller: \`ferry controller --listen 127.0.0.1:0 --heartbeat-interval ${f.heartbeatSeconds}\` (its own process, SQLite, log level info); hosts registered with AddHost (the CLI's gRPC client, 32 calls at once); the two fixture closures (test/bench/closure.nix, one 512 KiB leaf) pushed with \`ferry cache push --unsigned\`, so deploys pass \`--allow-unsigned\` (the simulated agents check no signatures).
- Agents: ${f.workers} worker process(es) (test/bench/agents/sim-agent.ts), one WebSocket each, from 127.2.x.y source addresses (100 agents per address), speaking the real protocol: hello, a heartbeat every ${f.heartbeatSeconds} s, prefetch answered by progress FETCHING + result FETCHED, activation by progress FETCHING/ACTIVATING/CONFIRMING, a confirming heartbeat round trip, then result ACTIVE; the real agent's jittered back-off (0.25 s up to 60 s); the last result sent again after each reconnect. First connections 256 at once per worker.
- Deploy: \`ferry deploy HOST=PATH… --allow-unsigned\` for all hosts; latency from the CLI's start to each agent's desired frame. RPC times are the CLI's own gRPC call (request sent → response decoded), recorded by test/bench/agents/rpc-timing.mjs loaded into the CLI.
- Rollout: \`ferry rollout start --manifest M --batch ${f.batch} --max-unavailable ${f.batch} --allow-unsigned\`: prefetch on all hosts, then waves of ${f.batch} by name. A wave is timed from when it became eligible: the last prefetch result (wave 1) or the previous wave's last ACTIVE result. Once the CLI returned, ${STORM} agents (spread over the fleet) dropped their sockets and reconnected with the back-off.
- Restart: SIGTERM (killed after 30 s if still running), then the same command on the same ports; all agents reconnect with the back-off. Real agents never give up reconnecting; "refused for good" counts fatal refusals.
- One real agent: \`ferry-agent\` (packages/cli/bin/ferry-agent.js, the flags the Nix package's wrapper passes) against this controller, given nothing to do, measured after ${REAL_AGENT_IDLE_SECONDS} s while the phases above ran; baseline: test/bench/agents/minimal-client.mjs (ws + the protobuf frames only), as plain Node and under ferry-agent's Node flags.
- CPU is user+system time from /proc/PID/stat over the phase (100 % = one core); RSS the highest VmRSS sampled each second; heartbeat RTT from the simulated agents (including answers later than the real agent's own timeout).

${figures}

${waves}
${f.notes.length > 0 ? `\nNotes: ${f.notes.join("; ")}\n` : ""}
${keptReading(file, heading)}`,
  );
}

/** The hand-written reading of a section's figures, which a new run keeps. */
function keptReading(file: string, heading: string): string {
  let text = "";
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return "";
  }
  const start = text.indexOf(`${heading}\n`);
  if (start < 0) return "";
  const end = text.indexOf("\n## ", start + heading.length);
  const section = text.slice(start, end < 0 ? undefined : end + 1);
  const at = section.indexOf(READING_HEADING);
  return at < 0 ? "" : section.slice(at);
}
