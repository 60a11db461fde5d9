import { readFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { FerryError, writeFileAtomic, type Logger, type Mode } from "@ferry/core";
import type { ActivationResult } from "@ferry/protocol/agent-channel";
import { parseAgentState } from "./state-validation.js";

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

/** A restart into another agent build, recorded before the exit; the next process checks that it took. */
export interface AgentRestart {
  from: string;
  to: string;
  requestedAtMs: number;
  /** The new process came back as the old build: do not exit for the same target again. */
  ineffective?: boolean;
}

export interface AgentState {
  version: 1;
  /** Serial of the last desired system this agent finished with. */
  appliedSerial: number;
  transaction: Transaction | null;
  /** The last result, re-sent after every reconnect until a newer one replaces it. */
  lastResult: ActivationResult | null;
  agentRestart?: AgentRestart | null;
}

const EMPTY: AgentState = { version: 1, appliedSerial: 0, transaction: null, lastResult: null };

/** How often a state kept only in memory (the disk was full) is tried again. */
const RETRY_WRITE_MS = 5000;

type Copy = { kind: "ok"; state: AgentState } | { kind: "missing" } | { kind: "damaged"; reason: string };

function readCopy(path: string): Copy {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { kind: "missing" };
    return { kind: "damaged", reason: (error as Error).message };
  }
  try {
    return { kind: "ok", state: parseAgentState(text) };
  } catch (error) {
    return { kind: "damaged", reason: (error as Error).message };
  }
}

/**
 * The agent's durable memory, kept twice: state.json and state.json.backup
 * hold the same content, the backup written (atomically) first. Writes are
 * atomic, so a damaged state.json means disk damage or a hand edit; the
 * agent then carries on from the backup, which is the same state or the one
 * about to be written (never one whose step already ran). With neither
 * readable it refuses to start rather than forget an activation in progress.
 */
export class StateFile {
  readonly path: string;
  readonly backupPath: string;
  private current: AgentState;
  private unsaved = false;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    stateDir: string,
    private readonly log: Logger,
  ) {
    this.path = join(stateDir, "state.json");
    this.backupPath = `${this.path}.backup`;
    this.current = this.load();
  }

  private load(): AgentState {
    const main = readCopy(this.path);
    if (main.kind === "ok") return main.state;
    const backup = readCopy(this.backupPath);
    if (main.kind === "missing" && backup.kind === "missing") return structuredClone(EMPTY);
    if (backup.kind !== "ok") {
      const why = (copy: Copy): string => (copy.kind === "damaged" ? copy.reason : "missing");
      throw new FerryError(
        "E_STATE_UNREADABLE",
        `neither ${this.path} (${why(main)}) nor ${this.backupPath} (${why(backup)}) holds a readable agent state; refusing to start rather than forget an activation in progress`,
      );
    }
    if (main.kind === "damaged") {
      // Keep the evidence; the next write puts a good state.json back.
      const aside = `${this.path}.corrupt-${Date.now()}`;
      renameSync(this.path, aside);
      this.log.error({ code: "E_STATE_CORRUPT", err: main.reason, movedTo: aside }, "agent state file unreadable; carrying on from its backup copy");
    } else {
      this.log.warn({ code: "E_STATE_CORRUPT", backup: this.backupPath }, "agent state file missing; carrying on from its backup copy");
    }
    return backup.state;
  }

  get state(): Readonly<AgentState> {
    return this.current;
  }

  /** Whether the state in memory is newer than the one on disk (a write failed). */
  get pendingWrite(): boolean {
    return this.unsaved;
  }

  /**
   * Changes the state only once the change is on disk: for a step that must
   * not run unless a restarted agent will know it may have run. Throws
   * E_STATE_WRITE_FAILED, changing nothing, when the write fails.
   */
  update(change: (draft: AgentState) => void): AgentState {
    const draft = structuredClone(this.current);
    change(draft);
    try {
      this.write(draft);
    } catch (error) {
      throw new FerryError("E_STATE_WRITE_FAILED", `cannot write ${this.path}: ${(error as Error).message}`, { cause: error });
    }
    this.current = draft;
    this.saved();
    return draft;
  }

  /**
   * Changes the state at once and writes it as soon as the disk allows: for
   * what must happen whether or not it can be written now (a rollback, a
   * result). The file on disk stays a state from which a restarted agent
   * reaches the same end.
   */
  record(change: (draft: AgentState) => void): AgentState {
    const draft = structuredClone(this.current);
    change(draft);
    this.current = draft;
    this.unsaved = true;
    this.flush();
    return draft;
  }

  /** Writes a state kept only in memory; true when the disk is up to date. */
  flush(): boolean {
    if (!this.unsaved) return true;
    try {
      this.write(this.current);
    } catch (error) {
      if (!this.retry) {
        this.log.error(
          { code: "E_STATE_WRITE_FAILED", err: (error as Error).message, path: this.path },
          "cannot write the agent state; keeping it in memory and trying again",
        );
        this.retry = setInterval(() => this.flush(), RETRY_WRITE_MS);
        this.retry.unref();
      }
      return false;
    }
    if (this.retry) this.log.warn({ path: this.path }, "agent state written again");
    this.saved();
    return true;
  }

  /** Stops retrying in the background (the agent is stopping); one last write is attempted. */
  close(): void {
    this.flush();
    clearInterval(this.retry);
    this.retry = undefined;
  }

  private saved(): void {
    this.unsaved = false;
    clearInterval(this.retry);
    this.retry = undefined;
  }

  private write(state: AgentState): void {
    const text = `${JSON.stringify(state, null, 2)}\n`;
    writeFileAtomic(this.backupPath, text, 0o600);
    writeFileAtomic(this.path, text, 0o600);
  }
}
