// `npm run bench -- agents --replicas 2` (or BENCH_REPLICAS=2): the agents
// bench against controller replicas on one PostgreSQL, with one SQLite and one
// PostgreSQL controller as baselines in the same run (agents/replicas.ts).
// Writes its own section of test/bench/RESULTS.md.
import { mkdirSync } from "node:fs";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { envWhole, fsyncMs } from "./agents/measure.js";
import { ratioTable, replicaTable } from "./agents/replicas-report.js";
import { runReplicaScenarios, type ReplicaBenchConfig, type ScenarioFigures } from "./agents/replicas.js";
import { writeResultsSection } from "./results.js";

const HERE = fileURLToPath(new URL(".", import.meta.url));

export async function runReplicasBench(): Promise<void> {
  const agents = envWhole("BENCH_AGENTS", 2000);
  const replicas = envWhole("BENCH_REPLICAS", 2);
  if (replicas < 2 || replicas > 8) throw new Error("BENCH_REPLICAS must be between 2 and 8");
  const config: ReplicaBenchConfig = {
    agents,
    replicas,
    heartbeatSeconds: envWhole("BENCH_HEARTBEAT_SECONDS", 10),
    batch: envWhole("BENCH_BATCH", Math.ceil(agents / 4)),
    workers: envWhole("BENCH_WORKERS", agents > 2000 ? 2 : 1),
    workParent: process.env["BENCH_WORK_DIR"] ?? tmpdir(),
  };
  mkdirSync(config.workParent, { recursive: true });
  const stops: (() => Promise<unknown> | unknown)[] = [];
  const stopAll = async (): Promise<void> => {
    for (const stop of stops.reverse()) await Promise.resolve(stop()).catch(() => undefined);
    stops.length = 0;
  };
  // Three scenarios, each bounded by its phases' deadlines; this bounds them all.
  const deadlineMs = (10 * 60 + (3 * agents) / 50) * 1000;
  const overall = setTimeout(() => {
    process.stderr.write(`agents bench (replicas): overall deadline of ${deadlineMs / 60_000} min reached; stopping everything\n`);
    void stopAll().then(() => process.exit(1));
  }, deadlineMs);
  const startedAt = new Date();
  let figures: ScenarioFigures[] = [];
  try {
    figures = await runReplicaScenarios(config, stops);
  } finally {
    clearTimeout(overall);
    await stopAll();
  }
  report(config, figures, startedAt, fsyncMs(config.workParent));
}

function report(config: ReplicaBenchConfig, figures: ScenarioFigures[], startedAt: Date, fsync: number): void {
  const table = replicaTable(figures);
  const ratios = ratioTable(figures);
  const notes = figures.flatMap((f) => f.notes.map((text) => `${f.scenario.label}: ${text}`));
  process.stdout.write(`\n${table}\n\n${ratios}\n${notes.map((n) => `note: ${n}\n`).join("")}`);
  const vars = [
    ...(process.env["BENCH_AGENTS"] ? [`BENCH_AGENTS=${config.agents}`] : []),
    ...(process.env["BENCH_WORK_DIR"] ? [`BENCH_WORK_DIR=${config.workParent}`] : []),
  ];
  const command = [...vars, `npm run bench -- agents --replicas ${config.replicas}`].join(" ");
  const n = config.agents.toLocaleString("en-US");
  writeResultsSection(
    join(HERE, "RESULTS.md"),
    `## Agents: ${config.replicas} controller replicas on PostgreSQL, ${n} simulated agents`,
    `Command: \`${command}\` (\`--replicas N\` is \`BENCH_REPLICAS=N\`; runs \`node --import tsx test/bench/run.ts agents --replicas ${config.replicas}\`; \`BENCH_AGENTS\` (2000 here), \`BENCH_BATCH\` (a quarter), \`BENCH_HEARTBEAT_SECONDS\` (10), \`BENCH_WORKERS\`).

- Machine: ${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, shared with other jobs (load ${loadavg()
      .map((v) => v.toFixed(1))
      .join(
        " ",
      )} at the end); Node ${process.version}; a 4 KiB write + fsync in the state's directory takes ${fsync.toFixed(2)} ms; run ${startedAt.toISOString()}.
- Three scenarios one after the other, each on fresh state, same fleet and phases: one \`ferry controller\` on SQLite (DATA_DIR/state.sqlite, WAL, synchronous=FULL); one on PostgreSQL (\`--database postgres://…/bench_1\`); ${config.replicas} replicas on one database (\`--database postgres://…/bench_2\`, each its own data directory and ports), A started first and so holding the leader lock.
- PostgreSQL: a throw-away cluster (test/harness/postgres.ts) on loopback in the same temporary directory as the SQLite file, **durable**: the server's defaults fsync=on, synchronous_commit=on, full_page_writes=on (a commit returns once its WAL is flushed, as SQLite's synchronous=FULL does), shared_buffers 32 MB, max_connections 200.
- Agents: ${config.workers} worker process(es) of simulated agents (test/bench/agents/sim-agent.ts, as the single-controller bench), heartbeat every ${config.heartbeatSeconds} s; in the replicas scenario agent i connects to replica i mod ${config.replicas} (the waves hold as many of each). Hosts are registered, the closures pushed and every command given through A; after all connect, 5 s to settle.
- Deploy: \`ferry deploy HOST=PATH… --allow-unsigned\` to all through A; desired-frame latency from the CLI's start, per controller the agent is linked to. An agent on B gets its frame once A's commit reached B: NOTIFY on the change clock, B's host feed (10 ms coalescing) reads changesSince and pushes.
- Rollout: \`ferry rollout start --manifest M --batch ${config.batch} --max-unavailable ${config.batch} --allow-unsigned\` through A; prefetch from the CLI's start; each wave's activation frames from when the wave became eligible (previous step's last result, which for B's agents is B's write read by A). No reconnect storm or restart here (the single-controller bench has them).
- CPU: user+system from /proc/PID/stat over the phase (100 % = one core); RSS the highest VmRSS sampled each second; PostgreSQL's CPU is the postmaster and its backends summed from the deploy's start to the rollout's end.

${table}

${ratios}
${notes.length > 0 ? `\nNotes: ${notes.join("; ")}\n` : ""}`,
  );
}
