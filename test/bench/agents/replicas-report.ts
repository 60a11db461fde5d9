// The replicas run's tables: one column per controller (SQLite, PostgreSQL,
// then each replica's agents), and the ratios the run is for: PostgreSQL
// against SQLite, and agents on another replica against those on A.
import type { ReplicaFigures, ScenarioFigures } from "./replicas.js";
import { seconds, spreadText } from "./report.js";

const DASH = "—";
const LETTERS = "ABCDEFGH";

function num(value: number | undefined, digits = 0): string {
  return value === undefined || Number.isNaN(value) || !Number.isFinite(value)
    ? DASH
    : value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function ms(value: number): string {
  if (Number.isNaN(value) || !Number.isFinite(value)) return DASH;
  return value >= 1000 ? `${num(value / 1000, 2)} s` : `${num(value, 1)} ms`;
}

interface Column {
  title: string;
  scenario: ScenarioFigures;
  replica: ReplicaFigures | undefined;
  /** Scenario-wide figures are shown once, in the column of the replica that took the commands. */
  first: boolean;
}

function columns(all: ScenarioFigures[]): Column[] {
  return all.flatMap((scenario) => {
    if (scenario.scenario.replicas === 1) return [{ title: scenario.scenario.label, scenario, replica: scenario.replicas[0], first: true }];
    return Array.from({ length: scenario.scenario.replicas }, (_, r) => ({
      title: `replicas: agents on ${LETTERS[r]}${r === 0 ? " (takes the commands, leads)" : ""}`,
      scenario,
      replica: scenario.replicas[r],
      first: r === 0,
    }));
  });
}

type Cell = (column: Column) => string;

const once =
  (cell: Cell): Cell =>
  (column) =>
    column.first ? cell(column) : "″";
const load =
  (which: "deployLoad" | "rolloutLoad"): Cell =>
  ({ replica }) =>
    replica ? `${num(replica[which].cpuPercent, 1)} %, ${num(replica[which].maxRssMiB)} MiB` : DASH;

export function replicaTable(all: ScenarioFigures[]): string {
  const cols = columns(all);
  const rows: [string, Cell][] = [
    ["agents on this controller", ({ replica }) => num(replica?.agents)],
    ["register all hosts through A (AddHost, 32 at once; set-up)", once(({ scenario }) => seconds(scenario.registrationMs))],
    ["connect all agents", once(({ scenario }) => (scenario.connected === undefined ? DASH : `${seconds(scenario.connectMs)} (${num(scenario.connected)})`))],
    [
      "`ferry deploy` to all through A: CLI wall time / Deploy RPC",
      once(({ scenario }) => (scenario.deploy ? `${seconds(scenario.deploy.cliMs)} / ${seconds(scenario.deploy.rpcMs)}` : DASH)),
    ],
    ["deploy: CLI start → desired frame p50 / p99 / max", ({ replica }) => spreadText(replica?.deployDesired)],
    [
      "deploy: hosts ACTIVE / CLI start → last ACTIVE",
      once(({ scenario }) => (scenario.deploy ? `${num(scenario.deploy.active)} / ${seconds(scenario.deploy.doneMs)}` : DASH)),
    ],
    [
      "`ferry rollout start` through A: CLI wall time / StartRollout RPC",
      once(({ scenario }) => (scenario.rollout ? `${seconds(scenario.rollout.cliMs)} / ${seconds(scenario.rollout.rpcMs)}` : DASH)),
    ],
    ["rollout prefetch: CLI start → desired frame p50 / p99 / max", ({ replica }) => spreadText(replica?.prefetchDesired)],
    ["rollout waves (all): eligible → desired frame p50 / p99 / max", ({ replica }) => spreadText(replica?.waveDesired)],
    ["rollout waves: worst wave's p99", ({ replica }) => (replica ? ms(replica.worstWaveP99) : DASH)],
    [
      "rollout: hosts ACTIVE / start → last ACTIVE (engine)",
      once(({ scenario }) =>
        scenario.rollout ? `${num(scenario.rollout.active)} / ${seconds(scenario.rollout.doneMs)} (${scenario.rollout.engineState || DASH})` : DASH,
      ),
    ],
    ["this controller deploying: CPU, max RSS", load("deployLoad")],
    ["this controller during the rollout: CPU, max RSS", load("rolloutLoad")],
    ["this controller's VmHWM at the end", ({ replica }) => (replica ? `${num(replica.hwmMiB)} MiB` : DASH)],
    [
      "PostgreSQL (all its processes), deploy start → rollout end: CPU",
      once(({ scenario }) => (scenario.scenario.postgres ? `${num(scenario.postgresCpuPercent, 1)} %` : "n/a")),
    ],
  ];
  return [
    `| figure | ${cols.map((c) => c.title).join(" | ")} |`,
    `|---|${cols.map(() => "---").join("|")}|`,
    ...rows.map(([label, cell]) => `| ${label} | ${cols.map(cell).join(" | ")} |`),
  ].join("\n");
}

function ratio(a: number | undefined, b: number | undefined): string {
  return a === undefined || b === undefined || !(b > 0) || Number.isNaN(a) ? DASH : `${num(a / b, 2)}×`;
}

export function ratioTable(all: ScenarioFigures[]): string {
  const [sqlite, pgOne, pgReplicas] = all;
  const a = pgReplicas?.replicas[0];
  const b = pgReplicas?.replicas[1];
  /** "p50 ratio / p99 ratio" of one latency spread between two replicas' figures. */
  const spreads = (key: "deployDesired" | "prefetchDesired" | "waveDesired", x: ReplicaFigures | undefined, y: ReplicaFigures | undefined): string =>
    `${ratio(x?.[key]?.p50, y?.[key]?.p50)} / ${ratio(x?.[key]?.p99, y?.[key]?.p99)}`;
  const spreadRow = (label: string, key: "deployDesired" | "prefetchDesired" | "waveDesired"): [string, string, string, string] => [
    label,
    spreads(key, pgOne?.replicas[0], sqlite?.replicas[0]),
    spreads(key, a, pgOne?.replicas[0]),
    spreads(key, b, a),
  ];
  const rows: [string, string, string, string][] = [
    ["Deploy RPC", ratio(pgOne?.deploy?.rpcMs, sqlite?.deploy?.rpcMs), ratio(pgReplicas?.deploy?.rpcMs, pgOne?.deploy?.rpcMs), ""],
    spreadRow("deploy desired frame p50 / p99", "deployDesired"),
    ["StartRollout RPC", ratio(pgOne?.rollout?.rpcMs, sqlite?.rollout?.rpcMs), ratio(pgReplicas?.rollout?.rpcMs, pgOne?.rollout?.rpcMs), ""],
    spreadRow("prefetch desired frame p50 / p99", "prefetchDesired"),
    spreadRow("wave desired frame p50 / p99 (all waves)", "waveDesired"),
    ["rollout start → last ACTIVE", ratio(pgOne?.rollout?.doneMs, sqlite?.rollout?.doneMs), ratio(pgReplicas?.rollout?.doneMs, pgOne?.rollout?.doneMs), ""],
    [
      "controller CPU during the rollout",
      ratio(pgOne?.replicas[0]?.rolloutLoad.cpuPercent, sqlite?.replicas[0]?.rolloutLoad.cpuPercent),
      `A ${ratio(a?.rolloutLoad.cpuPercent, pgOne?.replicas[0]?.rolloutLoad.cpuPercent)}`,
      ratio(b?.rolloutLoad.cpuPercent, a?.rolloutLoad.cpuPercent),
    ],
  ];
  return [
    "| ratio | PostgreSQL ÷ SQLite (one controller each) | replicas (A) ÷ one PostgreSQL controller | agents on B ÷ agents on A |",
    "|---|---|---|---|",
    ...rows.map((row) => `| ${row.join(" | ")} |`),
  ].join("\n");
}
