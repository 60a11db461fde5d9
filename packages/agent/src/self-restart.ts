import { join } from "node:path";
import type { Logger } from "@ferry/core";
import { describeBuild, sameBuild, unitBuild, type AgentBuild } from "./agent-build.js";
import type { AgentSettings } from "./settings.js";
import type { StateFile } from "./state-file.js";
import type { SwitchLock } from "./switch-lock.js";

/**
 * Exit status that asks the service manager for a restart (EX_TEMPFAIL). The
 * NixOS module lists it in RestartForceExitStatus=, so systemd restarts the
 * unit on it whatever Restart= says, from the unit as switching reloaded it.
 */
export const RESTART_EXIT_STATUS = 75;

/** Where a NixOS system carries the agent's unit, relative to the system's store path. */
export const AGENT_UNIT_FILE = "etc/systemd/system/ferry-agent.service";

export interface SelfRestartDeps {
  settings: AgentSettings;
  state: StateFile;
  log: Logger;
  /** How this process was started. */
  running: AgentBuild;
  currentSystem: () => string;
  switchLock: SwitchLock;
  now: () => number;
  /** Test-only fault injection: called once the restart is recorded, just before the exit. */
  pause?: (point: "self-restart") => Promise<void>;
}

/**
 * The agent unit has restartIfChanged = false (a restart in the middle of a
 * switch would kill the transaction), so a new agent build would only run
 * after a reboot. Instead, once an activation has settled and its result is
 * on disk, the agent compares the build the running system's unit starts
 * with its own, and exits for a restart when they differ. A kill at any point
 * of this is harmless: the transaction is closed before, and systemd starts
 * the unit's build whatever happens after.
 */
export class SelfRestart {
  constructor(private readonly deps: SelfRestartDeps) {}

  /** At start-up: says whether the restart a previous process asked for brought up the build it wanted. */
  reportPreviousRestart(): void {
    const { state, log, running } = this.deps;
    const restart = state.state.agentRestart;
    if (!restart || restart.ineffective) return;
    if (restart.to === describeBuild(running)) {
      log.info({ from: restart.from, to: restart.to }, "restarted into the agent build the running system names");
      state.record((draft) => {
        draft.agentRestart = null;
      });
      return;
    }
    log.error(
      { code: "E_AGENT_RESTART_INEFFECTIVE", wanted: restart.to, running: describeBuild(running) },
      "the agent restarted, but not as the build its unit names; it will not exit for that build again",
    );
    state.record((draft) => {
      if (draft.agentRestart) draft.agentRestart.ineffective = true;
    });
  }

  /** After an activation settled: true when the agent should now exit with RESTART_EXIT_STATUS. */
  async afterSettled(): Promise<boolean> {
    const { settings, state, log, running } = this.deps;
    if (!settings.selfRestart) return false;
    const system = this.deps.currentSystem();
    const wanted = system ? unitBuild(join(system, AGENT_UNIT_FILE)) : undefined;
    if (!wanted || sameBuild(wanted, running)) return false;
    const to = describeBuild(wanted);
    const from = describeBuild(running);
    const previous = state.state.agentRestart;
    if (previous?.ineffective && previous.to === to) return false;
    if (state.state.transaction || state.pendingWrite) {
      log.warn({ to }, "not restarting into the new agent build yet: the state on disk is not final");
      return false;
    }
    // Kept on success: the process exits holding it, so no dry-activate starts in between.
    const release = await this.deps.switchLock.acquire("restarting into a new agent build");
    try {
      state.update((draft) => {
        draft.agentRestart = { from, to, requestedAtMs: this.deps.now() };
      });
    } catch (error) {
      release();
      log.error({ code: "E_STATE_WRITE_FAILED", err: (error as Error).message }, "not restarting into the new agent build: cannot record it");
      return false;
    }
    log.warn({ from, to, system }, "the running system starts another agent build; exiting so the service manager restarts into it");
    await this.deps.pause?.("self-restart");
    return true;
  }
}
