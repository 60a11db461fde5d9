import type { Logger, Nix } from "@ferry/core";
import { isSameProcessAlive, processStartTicks } from "./process-identity.js";
import type { AgentSettings } from "./settings.js";
import type { StateFile, Transaction } from "./state-file.js";
import { readProfile } from "./system-links.js";

export interface SystemSwitchDeps {
  config: AgentSettings;
  nix: Nix;
  state: StateFile;
  log: Logger;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
}

const ORPHAN_POLL_MS = 500;

/**
 * The switch scripts and the system profile, as each strategy uses them. The
 * transaction decides when; this knows how, and how to find a switch an
 * earlier agent process left running.
 */
export class SystemSwitch {
  constructor(private readonly deps: SystemSwitchDeps) {}

  /** Puts the next system in place as the strategy says; the switch's pid is recorded for a restarted agent. */
  async activate(transaction: Transaction): Promise<void> {
    const { config, nix } = this.deps;
    const recordPid = (pid: number): void => {
      const startTicks = processStartTicks(pid);
      if (startTicks === undefined) return;
      transaction.switchProcess = { pid, startTicks };
      this.deps.state.record((draft) => {
        if (draft.transaction) draft.transaction.switchProcess = { pid, startTicks };
      });
    };
    switch (transaction.strategy) {
      case "trial":
      case "test":
        await nix.switchToConfiguration(transaction.next, "test", config.activationTimeoutMs, recordPid);
        return;
      case "switch":
        await nix.setProfile(config.profile, transaction.next);
        await nix.switchToConfiguration(transaction.next, "switch", config.activationTimeoutMs, recordPid);
        return;
      case "boot":
        await nix.setProfile(config.profile, transaction.next);
        await nix.switchToConfiguration(transaction.next, "boot", config.activationTimeoutMs, recordPid);
        return;
    }
  }

  /** Makes a system the boot default (a trial, once confirmed). */
  async makeBootDefault(system: string): Promise<void> {
    const { config, nix } = this.deps;
    if (readProfile(config.profile) !== system) await nix.setProfile(config.profile, system);
    await nix.switchToConfiguration(system, "boot", config.activationTimeoutMs);
  }

  /** Sets the profile back to the previous system and switches to it. */
  async restore(previous: string): Promise<void> {
    const { config, nix } = this.deps;
    if (readProfile(config.profile) !== previous) await nix.setProfile(config.profile, previous);
    await nix.switchToConfiguration(previous, "switch", config.activationTimeoutMs);
  }

  /**
   * A switch started by an earlier agent process may still be running (the
   * unit's KillMode spares it). Wait for it, but not past the deadline: a
   * switch that hangs is killed, never waited on forever.
   */
  async waitForOrphan(transaction: Transaction): Promise<void> {
    const orphan = transaction.switchProcess;
    if (!orphan || !isSameProcessAlive(orphan)) return;
    const { log, now, sleep } = this.deps;
    log.warn({ pid: orphan.pid }, "a switch-to-configuration from before the restart is still running; waiting for it");
    while (isSameProcessAlive(orphan) && now() < transaction.deadlineMs) await sleep(ORPHAN_POLL_MS);
    if (isSameProcessAlive(orphan)) {
      log.error({ pid: orphan.pid }, "the orphaned switch-to-configuration outlived its deadline; killing it");
      try {
        process.kill(-orphan.pid, "SIGKILL");
      } catch {
        process.kill(orphan.pid, "SIGKILL");
      }
    }
  }
}
