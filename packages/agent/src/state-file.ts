import { readFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic, type Logger, type Mode } from "@ferry/core";
import type { ActivationResult } from "@ferry/protocol";

export type TransactionPhase = "fetching" | "fetched" | "activating" | "confirming" | "confirmed" | "rolling-back";

/** The activation in progress; present from the first step until the result is recorded. */
export interface Transaction {
  serial: number;
  deploymentId: string;
  next: string;
  /** Exact store path that ran before; empty when the host ran nothing Ferry knows. */
  previous: string;
  /** The mode this transaction runs in (named `strategy` in state files already written). */
  strategy: Mode;
  phase: TransactionPhase;
  startedAtMs: number;
  /** Wall-clock deadline of the current phase, kept across restarts and reboots. */
  deadlineMs: number;
  /** Whether confirmation needs a heartbeat round trip (false without a controller). */
  requireHeartbeat: boolean;
  /** Health checks already failing before the switch: they do not count against the new system. */
  failingBefore: string[];
  /** How the checks judged the new system, kept from confirmation until the result is recorded. */
  confirmedChecks?: { run: number; failingBeforeAndAfter: string[] };
  /** The running switch-to-configuration, so a restarted agent can wait for it. */
  switchProcess?: { pid: number; startTicks: string };
  failure?: { code: string; message: string; output: string };
}

export interface AgentState {
  version: 1;
  /** Serial of the last desired system this agent finished with. */
  appliedSerial: number;
  transaction: Transaction | null;
  /** The last result, re-sent after every reconnect until a newer one replaces it. */
  lastResult: ActivationResult | null;
}

const EMPTY: AgentState = { version: 1, appliedSerial: 0, transaction: null, lastResult: null };

/**
 * The agent's durable memory. Every change is written atomically before the
 * step it announces, so a kill at any instant leaves a state the agent can
 * resume from.
 */
export class StateFile {
  readonly path: string;
  private current: AgentState;

  constructor(
    stateDir: string,
    private readonly log: Logger,
  ) {
    this.path = join(stateDir, "state.json");
    this.current = this.read();
  }

  private read(): AgentState {
    let text: string;
    try {
      text = readFileSync(this.path, "utf8");
    } catch {
      return structuredClone(EMPTY);
    }
    try {
      const parsed = JSON.parse(text) as AgentState;
      if (parsed.version !== 1) throw new Error(`unknown state version ${String(parsed.version)}`);
      return parsed;
    } catch (error) {
      // Writes are atomic, so this is disk damage or a hand edit: keep the
      // evidence, start clean, and say so loudly.
      const aside = `${this.path}.corrupt-${Date.now()}`;
      renameSync(this.path, aside);
      this.log.error({ err: (error as Error).message, movedTo: aside }, "agent state file unreadable; starting with an empty state");
      return structuredClone(EMPTY);
    }
  }

  get state(): Readonly<AgentState> {
    return this.current;
  }

  update(change: (draft: AgentState) => void): AgentState {
    const draft = structuredClone(this.current);
    change(draft);
    writeFileAtomic(this.path, `${JSON.stringify(draft, null, 2)}\n`, 0o600);
    this.current = draft;
    return draft;
  }
}
