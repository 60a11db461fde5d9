import { join } from "node:path";
import type { Counter, Gauge, Registry } from "prom-client";

type PromClient = typeof import("prom-client");
import { formatPhase, writeFileAtomic, type Logger } from "@ferry/core";
import type { ActivationResult } from "@ferry/protocol/agent-channel";
import type { CheckOutcome } from "./health-checks.js";
import type { TransactionPhase } from "./state-file.js";

/** What node-exporter's textfile collector reads: `*.prom` files; the temp file beside it is a dot file that never matches. */
export const METRICS_FILE = "ferry_agent.prom";

/** When in a transaction a set of health checks ran. */
export type CheckStage = "before-switch" | "confirm" | "after-rollback";

/** What the activation transaction reports; every call is cheap and none writes. */
export interface TransactionMetrics {
  /** A step of the transaction ended (moved on, settled, or threw), after `seconds`. */
  phaseDone(phase: TransactionPhase, seconds: number): void;
  rolledBack(code: string): void;
  healthChecks(stage: CheckStage, outcomes: readonly CheckOutcome[]): void;
  /** NAR bytes a fetch had to download, when the signed closure sizes told it. */
  fetched(bytes: number): void;
  /** The transaction (or prefetch, or refusal) settled: its result is final. */
  settled(result: ActivationResult): void;
}

/**
 * The agent's metrics as a node-exporter textfile: `DIR/ferry_agent.prom`,
 * replaced atomically (temp file, fsync, rename) on start and each time a
 * transaction settles, so the collector never reads half a file. Counters
 * count since the agent started, as any Prometheus counter does across a
 * restart. Check names come from the host's own configuration, so they are
 * a bounded label set.
 */
export class AgentMetricsFile implements TransactionMetrics {
  private readonly registry: Registry;
  private readonly file: string;
  private readonly phaseSeconds: Gauge<"phase">;
  private readonly phaseSecondsTotal: Counter<"phase">;
  private readonly rollbacks: Counter<"reason">;
  private readonly checkPassed: Gauge<"stage" | "check">;
  private readonly checkRuns: Counter<"stage" | "result">;
  private readonly fetchBytes: Counter;
  private readonly transactions: Counter<"outcome">;
  private readonly lastSettled: Gauge;
  private readonly appliedSerial: Gauge;
  private writing: Promise<void> = Promise.resolve();

  /** prom-client is loaded only by agents that write metrics: the others keep its memory. */
  static async open(dir: string, log: Logger, now: () => number = Date.now): Promise<AgentMetricsFile> {
    return new AgentMetricsFile(await import("prom-client"), dir, log, now);
  }

  constructor(
    { Counter, Gauge, Registry }: PromClient,
    dir: string,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {
    this.registry = new Registry();
    this.file = join(dir, METRICS_FILE);
    const registers = [this.registry];
    this.phaseSeconds = new Gauge({
      name: "ferry_agent_phase_duration_seconds",
      help: "How long each step of the last transaction that ran it took (fetching, fetched: pre-switch checks, activating: the switch, confirming, rolling-back).",
      labelNames: ["phase"],
      registers,
    });
    this.phaseSecondsTotal = new Counter({
      name: "ferry_agent_phase_seconds_total",
      help: "Time spent in each transaction step since the agent started.",
      labelNames: ["phase"],
      registers,
    });
    this.rollbacks = new Counter({
      name: "ferry_agent_rollbacks_total",
      help: "Rollbacks started, by the error code that caused them.",
      labelNames: ["reason"],
      registers,
    });
    this.checkPassed = new Gauge({
      name: "ferry_agent_health_check_passed",
      help: "Whether each health check passed (1) or failed (0) the last time it ran at that stage.",
      labelNames: ["stage", "check"],
      registers,
    });
    this.checkRuns = new Counter({
      name: "ferry_agent_health_checks_total",
      help: "Health check runs, by stage and result (pass, fail).",
      labelNames: ["stage", "result"],
      registers,
    });
    this.fetchBytes = new Counter({ name: "ferry_agent_fetch_bytes_total", help: "NAR bytes fetched, as the signed closure sizes told them.", registers });
    this.transactions = new Counter({
      name: "ferry_agent_transactions_total",
      help: "Settled transactions, by the phase they ended in (active, boot-pending, rolled-back, failed, fetched).",
      labelNames: ["outcome"],
      registers,
    });
    this.lastSettled = new Gauge({ name: "ferry_agent_last_transaction_timestamp_seconds", help: "When the last transaction settled.", registers });
    this.appliedSerial = new Gauge({ name: "ferry_agent_last_transaction_serial", help: "Serial of the last settled transaction.", registers });
  }

  phaseDone(phase: TransactionPhase, seconds: number): void {
    this.phaseSeconds.set({ phase }, seconds);
    this.phaseSecondsTotal.inc({ phase }, seconds);
  }

  rolledBack(code: string): void {
    this.rollbacks.inc({ reason: code });
  }

  healthChecks(stage: CheckStage, outcomes: readonly CheckOutcome[]): void {
    for (const outcome of outcomes) {
      this.checkPassed.set({ stage, check: outcome.name }, outcome.passed ? 1 : 0);
      this.checkRuns.inc({ stage, result: outcome.passed ? "pass" : "fail" });
    }
  }

  fetched(bytes: number): void {
    this.fetchBytes.inc(bytes);
  }

  settled(result: ActivationResult): void {
    this.transactions.inc({ outcome: formatPhase(result.phase) });
    this.lastSettled.set(this.now() / 1000);
    this.appliedSerial.set(result.serial);
    // On the next turn: the step that settled the transaction is timed only once it has returned.
    this.writing = this.writing.then(() => new Promise<void>((resolve) => setImmediate(resolve)));
    void this.write();
  }

  /** Resolves once the writes started so far are done. */
  idle(): Promise<void> {
    return this.writing;
  }

  /** Replaces the file; a failure (a full disk, a missing directory) is logged and never stops the agent. */
  write(): Promise<void> {
    // In order: a slower earlier write must not replace a later one.
    this.writing = this.writing.then(async () => {
      try {
        writeFileAtomic(this.file, await this.registry.metrics(), 0o644);
      } catch (error) {
        this.log.warn({ file: this.file, err: (error as Error).message }, "could not write the metrics textfile");
      }
    });
    return this.writing;
  }
}
