// The agents bench's figures, the table that sets each next to issue 13's
// target, and the RESULTS.md section.
import type { StopOutcome } from "../../harness/controller-proc.js";
import type { Recovery, WaveFigures } from "./analysis.js";
import type { Spread } from "./measure.js";
import type { IdleFootprint } from "./real-agent.js";

export interface Load {
  cpuPercent: number;
  maxRssMiB: number;
}

/** Filled phase by phase; a phase that did not run leaves its figures out. */
export interface Figures {
  agents: number;
  workers: number;
  heartbeatSeconds: number;
  batch: number;
  fileLimit: number;
  fsyncMs?: number;
  registrationMs?: number;
  connect?: { allMs: number; connected: number; deadlineS: number; logLinesPerAgent: number };
  idle?: Load & { seconds: number; rtt: Spread };
  deploy?: { cliMs: number; rpcMs: number; desired: Spread; active: number; doneMs: number; load: Load };
  rollout?: {
    id: string;
    startedAtMs: number;
    cliMs: number;
    rpcMs: number;
    prefetch: Spread;
    prefetchDoneMs: number;
    waves: WaveFigures[];
    active: number;
    doneMs: number;
    load: Load;
    rtt: Spread;
    engineState: string;
  };
  storm?: Recovery;
  rttThroughout?: Spread;
  hwmMiB?: number;
  restart?: { stop: StopOutcome; back: Recovery; sigtermToStartMs: number; fatalRefusals: number; deadlineS: number };
  realAgent?: IdleFootprint;
  notes: string[];
}

const DASH = "—";

function num(value: number | undefined, digits = 0): string {
  return value === undefined || Number.isNaN(value) ? DASH : value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function seconds(ms: number | undefined): string {
  return ms === undefined || Number.isNaN(ms) ? DASH : `${num(ms / 1000, 2)} s`;
}

function ms(value: number): string {
  if (Number.isNaN(value)) return DASH;
  return value >= 1000 ? `${num(value / 1000, 2)} s` : `${num(value, 1)} ms`;
}

export function spreadText(s: Spread | undefined): string {
  return !s || s.count === 0 ? DASH : `${ms(s.p50)} / ${ms(s.p99)} / ${ms(s.max)} (n=${num(s.count)})`;
}

function verdict(met: boolean | undefined): string {
  return met === undefined ? "" : met ? " — met" : " — **missed**";
}

type Row = [figure: string, measured: string, target: string];

function rows(f: Figures): Row[] {
  const out: Row[] = [];
  const n = num(f.agents);
  const { connect, idle, deploy, rollout, storm, restart, realAgent } = f;
  if (f.registrationMs !== undefined) out.push([`register ${n} hosts (AddHost, 32 at once; set-up)`, seconds(f.registrationMs), ""]);
  if (connect)
    out.push([
      `connect all ${n} agents`,
      connect.connected === f.agents ? seconds(connect.allMs) : `${num(connect.connected)} of ${n} within ${connect.deadlineS} s`,
      "",
    ]);
  if (connect) out.push(["controller log lines per connecting agent (info)", num(connect.logLinesPerAgent, 1), "one summary line per interval"]);
  if (idle) {
    out.push([`controller idle (${idle.seconds} s): RSS, CPU`, `${num(idle.maxRssMiB)} MiB, ${num(idle.cpuPercent, 1)} %`, "RSS < 1 GiB at 50,000"]);
    out.push(["heartbeat RTT idle p50 / p99 / max", spreadText(idle.rtt), `p99 < 100 ms${verdict(idle.rtt.count ? idle.rtt.p99 < 100 : undefined)}`]);
  }
  if (deploy) {
    out.push(["`ferry deploy` to all: CLI wall time / Deploy RPC", `${seconds(deploy.cliMs)} / ${seconds(deploy.rpcMs)}`, ""]);
    out.push([
      "deploy: CLI start → desired frame p50 / p99 / max",
      spreadText(deploy.desired),
      `p99 < 2 s${verdict(deploy.desired.count === f.agents ? deploy.desired.p99 < 2000 : deploy.desired.count ? false : undefined)}`,
    ]);
    out.push(["deploy: hosts ACTIVE / time to the last", `${num(deploy.active)} / ${seconds(deploy.doneMs)}`, ""]);
    out.push(["controller deploying: RSS, CPU", `${num(deploy.load.maxRssMiB)} MiB, ${num(deploy.load.cpuPercent, 1)} %`, ""]);
  }
  if (rollout) {
    out.push([
      "`ferry rollout start`: CLI wall time / StartRollout RPC",
      `${seconds(rollout.cliMs)} / ${seconds(rollout.rpcMs)}`,
      `StartRollout ≤ 2 s${verdict(Number.isNaN(rollout.rpcMs) ? undefined : rollout.rpcMs <= 2000)}`,
    ]);
    out.push(["rollout prefetch: CLI start → desired frame p50 / p99 / max", spreadText(rollout.prefetch), ""]);
    const worst = rollout.waves
      .filter((wave) => wave.desired.count > 0)
      .reduce<WaveFigures | undefined>((w, wave) => (!w || wave.desired.p99 > w.desired.p99 ? wave : w), undefined);
    const wavesDone = rollout.waves.every((wave) => wave.desired.count === wave.size);
    out.push([
      "rollout waves: eligible → desired frame, worst wave's p99",
      worst ? `${ms(worst.desired.p99)} (wave ${worst.wave})` : DASH,
      `p99 < 2 s${verdict(worst && wavesDone ? worst.desired.p99 < 2000 : worst?.desired.count ? false : undefined)}`,
    ]);
    out.push([
      "rollout: hosts ACTIVE / start → last ACTIVE",
      `${num(rollout.active)} / ${seconds(rollout.doneMs)} (engine: ${rollout.engineState || DASH})`,
      "",
    ]);
    out.push([
      "heartbeat RTT during the rollout p50 / p99 / max",
      spreadText(rollout.rtt),
      `p99 < 100 ms${verdict(rollout.rtt.count ? rollout.rtt.p99 < 100 : undefined)}`,
    ]);
    out.push(["controller during the rollout: RSS, CPU", `${num(rollout.load.maxRssMiB)} MiB, ${num(rollout.load.cpuPercent, 1)} %`, ""]);
  }
  if (storm) {
    out.push([
      `reconnect storm in the rollout: back within 10 s`,
      `${num(storm.within10s)} of ${num(storm.dropped)}`,
      `all within 10 s${verdict(storm.within10s === storm.dropped)}`,
    ]);
    out.push(["reconnect storm: back within 60 s / all back after", `${num(storm.within60s)} of ${num(storm.dropped)} / ${seconds(storm.allBackMs)}`, ""]);
  }
  if (f.rttThroughout) out.push(["heartbeat RTT, connect → end of rollout p50 / p99 / max", spreadText(f.rttThroughout), "p99 < 100 ms throughout"]);
  if (f.hwmMiB !== undefined) out.push(["controller VmHWM before the restart", `${num(f.hwmMiB)} MiB`, "RSS < 1 GiB at 50,000"]);
  if (restart) {
    out.push([
      "SIGTERM → controller exit",
      restart.stop.exited ? seconds(restart.stop.ms) : `still running after ${seconds(restart.stop.ms)} (killed)`,
      `≤ 5 s${verdict(restart.stop.exited && restart.stop.ms <= 5000)}`,
    ]);
    out.push([
      `restart: all ${n} back (from the new start / from SIGTERM)`,
      restart.back.back === f.agents
        ? `${seconds(restart.back.allBackMs)} / ${seconds(restart.back.allBackMs + restart.sigtermToStartMs)}`
        : `${num(restart.back.back)} of ${n} within ${restart.deadlineS} s`,
      `≤ 60 s at 50,000${verdict(restart.back.back === f.agents ? restart.back.allBackMs + restart.sigtermToStartMs <= 60_000 : false)}`,
    ]);
    out.push(["restart: agents refused for good (fatal refusal)", num(restart.fatalRefusals), `none${verdict(restart.fatalRefusals === 0)}`]);
  }
  if (realAgent) {
    const { agent, baseline, flaggedBaseline } = realAgent;
    out.push([
      `one real \`ferry-agent\`, ${Math.round(realAgent.idleSeconds)} s idle: VmHWM / VmRSS / CPU`,
      `${num(agent.hwmMiB, 1)} / ${num(agent.rssMiB, 1)} MiB / ${num(agent.cpuPercent, 2)} %${agent.alive ? "" : " (exited!)"}`,
      `VmHWM ≤ 60 MB (${num(60e6 / 2 ** 20, 1)} MiB)${verdict(agent.hwmMiB <= 60e6 / 2 ** 20)}`,
    ]);
    out.push([
      "baseline: minimal ws+protobuf client: VmHWM / VmRSS",
      `${num(baseline.hwmMiB, 1)} / ${num(baseline.rssMiB, 1)} MiB (agent ÷ baseline VmHWM ${num(agent.hwmMiB / baseline.hwmMiB, 2)}×)`,
      "",
    ]);
    out.push([
      `baseline under ferry-agent's flags (${flaggedBaseline.flags.join(" ")}): VmHWM / VmRSS`,
      `${num(flaggedBaseline.hwmMiB, 1)} / ${num(flaggedBaseline.rssMiB, 1)} MiB (agent ÷ this baseline VmHWM ${num(agent.hwmMiB / flaggedBaseline.hwmMiB, 2)}×)`,
      "",
    ]);
  }
  return out;
}

export function table(f: Figures): string {
  const lines = ["| figure | measured | issue 13's target |", "|---|---|---|", ...rows(f).map((r) => `| ${r.join(" | ")} |`)];
  return lines.join("\n");
}

export function waveTable(f: Figures): string {
  if (!f.rollout || f.rollout.waves.length === 0) return "";
  const { rollout } = f;
  const head = [
    "| step | hosts | became eligible (after start) | desired frame p50 / p99 / max from eligible | ACTIVE | eligible → last result |",
    "|---|---|---|---|---|---|",
    `| prefetch | ${num(f.agents)} | CLI start | ${spreadText(rollout.prefetch)} | FETCHED: ${Number.isNaN(rollout.prefetchDoneMs) ? "not all" : "all"} | ${seconds(rollout.prefetchDoneMs)} |`,
  ];
  const base = rollout.startedAtMs;
  return [
    ...head,
    ...rollout.waves.map(
      (w) => `| wave ${w.wave} | ${num(w.size)} | ${seconds(w.eligibleAtMs - base)} | ${spreadText(w.desired)} | ${num(w.active)} | ${seconds(w.doneMs)} |`,
    ),
  ].join("\n");
}
