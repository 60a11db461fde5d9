import { FerryError, type Logger } from "@ferry/core";
import { HostPhase } from "@ferry/protocol";
import type { AgentHub } from "../hub/agent-hub.js";
import type { MaintenanceWindowRecord, RolloutHostRecord, RolloutHostState, RolloutRecord, RolloutStore } from "../store/rollout-records.js";
import type { HostRecord, StateStore } from "../store/state-store.js";
import { releaseHeldDeploys } from "./held-deploys.js";
import { completionReason } from "./outcome.js";
import { confirmedEvidence, unprovenCanaries, unprovenReason } from "./check-evidence.js";
import { phaseDeadlineAtMs } from "./deadline.js";
import { thresholdReached } from "./plan.js";
import { mayActivateNow } from "./windows.js";

export interface EngineDeps {
  store: StateStore;
  hub: AgentHub;
  log: Logger;
  now: () => number;
  onRolloutChanged: (id: string) => void;
  onHostChanged: (name: string) => void;
}

const FINISHED: ReadonlySet<RolloutHostState> = new Set(["confirmed", "failed", "rolled-back", "skipped", "reverted"]);
const FAILED: ReadonlySet<RolloutHostState> = new Set(["failed", "rolled-back"]);
/** Given their new system and not yet confirmed on it: these hold a maxUnavailable slot. */
const IN_FLIGHT: ReadonlySet<RolloutHostState> = new Set(["activating", "boot-pending"]);
const TICK_MS = 1000;

/**
 * Where a host that finished its activation stands. Confirmed means it runs
 * the rollout's system and its agent confirmed it; a system installed for
 * the next boot proves nothing until the host has booted it.
 */
function activationState(record: HostRecord, storePath: string): RolloutHostState {
  if (record.phase === HostPhase.HOST_PHASE_ACTIVE) return record.currentSystem === storePath ? "confirmed" : "boot-pending";
  if (record.phase === HostPhase.HOST_PHASE_BOOT_PENDING) return "boot-pending";
  if (record.phase === HostPhase.HOST_PHASE_ROLLED_BACK) return "rolled-back";
  return "failed";
}

/**
 * Drives every unfinished rollout one step at a time. All it knows is in the
 * database, and a host's progress is read from the host's own record (the
 * serial the rollout gave it), so a controller killed at any moment resumes
 * where it stood without activating a host twice.
 */
export class RolloutEngine {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;

  constructor(private readonly deps: EngineDeps) {}

  private get rollouts(): RolloutStore {
    return this.deps.store.rollouts;
  }

  start(): void {
    this.timer = setInterval(() => this.poke(), TICK_MS);
    this.poke();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** Runs a step soon; steps never overlap. */
  poke(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.tickAll()
      .catch((error: unknown) => this.deps.log.error({ err: error instanceof Error ? error.stack : String(error) }, "rollout step failed"))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.poke();
        }
      });
  }

  private async tickAll(): Promise<void> {
    const windows = await this.rollouts.listWindows();
    await releaseHeldDeploys(this.deps, windows);
    for (const rollout of await this.rollouts.activeRollouts()) await this.step(rollout, windows);
  }

  private log(rollout: RolloutRecord) {
    return this.deps.log.child({ rolloutId: rollout.id });
  }

  private async setHost(rollout: RolloutRecord, host: RolloutHostRecord, state: RolloutHostState, errorCode = "", errorMessage = ""): Promise<void> {
    if (host.state === state && host.errorCode === errorCode) return;
    this.log(rollout).info({ host: host.name, from: host.state, to: state, code: errorCode || undefined }, `rollout host ${state}`);
    host.state = state;
    host.errorCode = errorCode;
    host.errorMessage = errorMessage;
    await this.rollouts.updateRolloutHost(rollout.id, host.name, { state, errorCode, errorMessage }, this.deps.now());
    this.deps.onRolloutChanged(rollout.id);
  }

  private async assign(rollout: RolloutRecord, host: RolloutHostRecord, storePath: string, activate: boolean, state: RolloutHostState): Promise<void> {
    // The intent signed at the start approves the rollout's own system only; a revert goes out unsigned.
    const intent = storePath === host.storePath ? host.intent : undefined;
    host.serial = await this.rollouts.assignDesired(rollout.id, host.name, { storePath, activate, mode: rollout.mode, intent }, state, this.deps.now());
    host.state = state;
    const record = await this.deps.store.getHost(host.name);
    if (record) this.deps.hub.pushDesired(record);
    this.log(rollout).info({ host: host.name, serial: host.serial, storePath, activate }, activate ? "activating host" : "prefetching on host");
    this.deps.onHostChanged(host.name);
    this.deps.onRolloutChanged(rollout.id);
  }

  /** Reads each in-flight host's own record to learn how its step ended. */
  private async observe(rollout: RolloutRecord): Promise<Map<string, HostRecord>> {
    const records = new Map<string, HostRecord>();
    for (const host of rollout.hosts) {
      const record = await this.deps.store.getHost(host.name);
      if (!record) {
        if (!FINISHED.has(host.state)) await this.setHost(rollout, host, "skipped", "E_UNKNOWN_HOST", "host removed during the rollout");
        continue;
      }
      records.set(host.name, record);
      if ((host.state === "prefetched" || host.state === "waiting-window") && record.desiredSerial !== host.serial) {
        // An operator deployed something else meanwhile: the rollout must not overwrite it.
        await this.setHost(rollout, host, "skipped", "E_SUPERSEDED", "another deployment replaced this host's desired system");
        continue;
      }
      if (host.state !== "prefetching" && !IN_FLIGHT.has(host.state) && host.state !== "reverting") continue;
      if (record.desiredSerial !== host.serial) {
        await this.setHost(
          rollout,
          host,
          host.state === "prefetching" ? "unfetchable" : "failed",
          "E_SUPERSEDED",
          "another deployment replaced this host's desired system",
        );
        continue;
      }
      if (record.appliedSerial < host.serial) continue;
      const failure = [record.lastErrorCode, record.lastErrorMessage] as const;
      if (host.state === "prefetching") {
        if (record.phase === HostPhase.HOST_PHASE_FETCHED) await this.setHost(rollout, host, "prefetched");
        else await this.setHost(rollout, host, "unfetchable", ...failure);
      } else if (IN_FLIGHT.has(host.state)) {
        const state = activationState(record, host.storePath);
        if (state === "confirmed") await this.setHost(rollout, host, state, ...confirmedEvidence(record));
        else await this.setHost(rollout, host, state, ...(FAILED.has(state) ? failure : []));
      } else if (record.phase === HostPhase.HOST_PHASE_BOOT_PENDING) {
        await this.setHost(rollout, host, "reverted", "", "the previous system is the boot default again; it runs after the next reboot");
      } else {
        await this.setHost(rollout, host, record.phase === HostPhase.HOST_PHASE_ACTIVE ? "reverted" : "failed", ...failure);
      }
    }
    return records;
  }

  private async step(rollout: RolloutRecord, windows: readonly MaintenanceWindowRecord[]): Promise<void> {
    const records = await this.observe(rollout);
    switch (rollout.state) {
      case "prefetching":
        return this.stepPrefetch(rollout);
      case "running":
        return this.stepWave(rollout, records, windows);
      case "aborted":
        // Hosts that were mid-activation when the rollout aborted finish later; revert them too.
        return this.revertConfirmed(rollout);
      default:
        return;
    }
  }

  private async stepPrefetch(rollout: RolloutRecord): Promise<void> {
    const now = this.deps.now();
    for (const host of rollout.hosts.filter((h) => h.state === "pending")) await this.assign(rollout, host, host.storePath, false, "prefetching");
    if (now > phaseDeadlineAtMs(rollout)) {
      for (const host of rollout.hosts.filter((h) => h.state === "prefetching")) {
        await this.setHost(rollout, host, "unfetchable", "E_PREFETCH_TIMEOUT", "did not fetch its closure before the prefetch timeout");
      }
    }
    if (rollout.hosts.some((h) => h.state === "pending" || h.state === "prefetching")) return;
    const unfetchable = rollout.hosts.filter((h) => h.state === "unfetchable");
    if (unfetchable.length > 0 && !rollout.policy.skipUnfetchable) {
      const names = unfetchable.map((h) => `${h.name} (${h.errorCode || "error"})`).join(", ");
      return this.transition(rollout, "paused", `prefetch failed on ${names}; resume to skip them, or abort`);
    }
    for (const host of unfetchable) await this.setHost(rollout, host, "skipped", host.errorCode, host.errorMessage);
    await this.beginWave(rollout, 1);
  }

  private async beginWave(rollout: RolloutRecord, wave: number, resumeAtMs = 0): Promise<void> {
    const now = this.deps.now();
    rollout.currentWave = wave;
    rollout.resumeAtMs = resumeAtMs;
    rollout.phaseStartedAtMs = Math.max(now, resumeAtMs);
    await this.rollouts.updateRollout(
      rollout.id,
      { state: "running", currentWave: wave, resumeAtMs, phaseStartedAtMs: rollout.phaseStartedAtMs, reason: "" },
      now,
    );
    rollout.state = "running";
    this.log(rollout).info({ wave, waves: rollout.waveCount, resumeAt: resumeAtMs ? new Date(resumeAtMs).toISOString() : undefined }, "wave starting");
    this.deps.onRolloutChanged(rollout.id);
  }

  private async transition(rollout: RolloutRecord, state: RolloutRecord["state"], reason: string): Promise<void> {
    rollout.state = state;
    rollout.reason = reason;
    await this.rollouts.updateRollout(rollout.id, { state, reason }, this.deps.now());
    this.log(rollout).info({ state, reason }, `rollout ${state}`);
    this.deps.onRolloutChanged(rollout.id);
  }

  private async stepWave(rollout: RolloutRecord, records: Map<string, HostRecord>, windows: readonly MaintenanceWindowRecord[]): Promise<void> {
    const now = this.deps.now();
    const { policy } = rollout;
    const targets = rollout.hosts.filter((h) => h.state !== "skipped");
    const failed = targets.filter((h) => FAILED.has(h.state));
    const executed = targets.filter((h) => h.state === "confirmed" || FAILED.has(h.state));
    const canaryFailed = policy.canary.value > 0 && failed.some((h) => h.wave === 1);
    if (canaryFailed || thresholdReached(policy, targets.length, executed.length, failed.length)) {
      const why = canaryFailed ? "the canary failed" : `${failed.length} of ${executed.length} finished hosts failed`;
      return this.abort(rollout, `${why}: ${failed.map((h) => `${h.name} ${h.errorCode}`).join(", ")}`);
    }
    const unproven = unprovenCanaries(rollout);
    if (unproven.length > 0) return this.transition(rollout, "paused", unprovenReason(unproven));
    if (rollout.resumeAtMs > now) return;
    const wave = targets.filter((h) => h.wave === rollout.currentWave);
    if (wave.every((h) => FINISHED.has(h.state))) {
      if (rollout.currentWave >= rollout.waveCount) return this.transition(rollout, "completed", completionReason(rollout.hosts));
      if (policy.gate) return this.transition(rollout, "waiting-gate", `wave ${rollout.currentWave} done; promote to start wave ${rollout.currentWave + 1}`);
      return this.beginWave(rollout, rollout.currentWave + 1, policy.pauseMs > 0 ? now + policy.pauseMs : 0);
    }
    const deadline = phaseDeadlineAtMs(rollout);
    if (deadline > 0 && now > deadline) {
      const unbooted = wave.filter((h) => h.state === "boot-pending").map((h) => h.name);
      const detail = unbooted.length > 0 ? `; installed for the next boot but not running it yet: ${unbooted.join(", ")}` : "";
      return this.abort(rollout, `wave ${rollout.currentWave} exceeded its progress deadline${detail}`);
    }
    const unavailable = targets.filter((h) => IN_FLIGHT.has(h.state) || FAILED.has(h.state)).length;
    let slots = policy.maxUnavailable - unavailable;
    if (slots <= 0 && !targets.some((h) => IN_FLIGHT.has(h.state))) {
      return this.abort(rollout, `${failed.length} failed host(s) use up maxUnavailable (${policy.maxUnavailable})`);
    }
    for (const host of wave.filter((h) => h.state === "prefetched" || h.state === "waiting-window")) {
      if (slots <= 0) break;
      const record = records.get(host.name);
      if (!record) continue;
      if (!mayActivateNow(host.name, record.tags, windows, now)) {
        await this.setHost(rollout, host, "waiting-window");
        continue;
      }
      await this.assign(rollout, host, host.storePath, true, "activating");
      slots -= 1;
    }
  }

  async abort(rollout: RolloutRecord, reason: string): Promise<void> {
    await this.transition(rollout, "aborted", reason);
    await this.revertConfirmed(rollout);
  }

  private async revertConfirmed(rollout: RolloutRecord): Promise<void> {
    if (!rollout.policy.rollbackOnAbort) return;
    // A boot-pending host changed its boot default: put the previous system back there too.
    for (const host of rollout.hosts.filter((h) => (h.state === "confirmed" || h.state === "boot-pending") && h.errorCode !== "E_ROLLBACK_FAILED")) {
      if (!host.previousSystem) {
        await this.setHost(rollout, host, host.state, "E_ROLLBACK_FAILED", "no previous system recorded; left as is");
        continue;
      }
      await this.assign(rollout, host, host.previousSystem, true, "reverting");
    }
  }

  /** A canary confirmed without a passing check pauses the rollout: resuming must say it accepts that. */
  private async acceptFailingChecks(rollout: RolloutRecord, accept: boolean): Promise<void> {
    if (accept) {
      rollout.policy = { ...rollout.policy, acceptFailingChecks: true };
      await this.rollouts.updateRollout(rollout.id, { policy: rollout.policy }, this.deps.now());
      return;
    }
    const unproven = unprovenCanaries(rollout);
    if (unproven.length > 0) throw new FerryError("E_CHECKS_UNPROVEN", `rollout ${rollout.id} stays paused: ${unprovenReason(unproven)}`);
  }

  /** Operator actions; each is valid only in some states. */
  async control(
    id: string,
    action: "pause" | "resume" | "abort" | "promote",
    reason: string,
    options: { acceptFailingChecks?: boolean } = {},
  ): Promise<RolloutRecord> {
    const rollout = await this.rollouts.getRollout(id);
    const refuse = () => new FerryError("E_ROLLOUT_STATE", `cannot ${action} rollout ${id}: it is ${rollout.state}`);
    switch (action) {
      case "pause":
        if (rollout.state !== "running" && rollout.state !== "prefetching") throw refuse();
        await this.transition(rollout, "paused", reason || "paused by operator");
        break;
      case "resume":
        if (rollout.state !== "paused") throw refuse();
        await this.acceptFailingChecks(rollout, options.acceptFailingChecks === true);
        if (rollout.currentWave === 0) {
          // Paused after prefetch: resuming means going on without the hosts that could not fetch.
          for (const host of rollout.hosts.filter((h) => h.state === "unfetchable"))
            await this.setHost(rollout, host, "skipped", host.errorCode, host.errorMessage);
          if (rollout.hosts.every((h) => h.state !== "prefetching" && h.state !== "pending")) await this.beginWave(rollout, 1);
          else await this.transition(rollout, "prefetching", "");
        } else {
          // Time spent paused does not count against the wave's progress deadline.
          rollout.phaseStartedAtMs = this.deps.now();
          await this.rollouts.updateRollout(rollout.id, { phaseStartedAtMs: rollout.phaseStartedAtMs }, this.deps.now());
          await this.transition(rollout, "running", "");
        }
        break;
      case "promote":
        if (rollout.state !== "waiting-gate") throw refuse();
        await this.beginWave(rollout, rollout.currentWave + 1);
        break;
      case "abort":
        if (rollout.state === "completed" || rollout.state === "aborted") throw refuse();
        await this.abort(rollout, reason || "aborted by operator");
        break;
    }
    this.poke();
    return this.rollouts.getRollout(id);
  }
}
