import { FerryError, slices, type Logger } from "@ferry/core";
import type { DesiredState } from "../desired/desired-state.js";
import type { AgentHub } from "../hub/agent-hub.js";
import type { MaintenanceWindowRecord, RolloutHostRecord, RolloutHostState, RolloutRecord, RolloutStore } from "../store/rollout-records.js";
import type { StateStore } from "../store/state-store.js";
import { releaseHeldDeploys } from "./held-deploys.js";
import { completionReason } from "./outcome.js";
import { unprovenCanaries, unprovenReason } from "./check-evidence.js";
import { FAILED, FINISHED, IN_FLIGHT, observeHost } from "./observe.js";
import { phaseDeadlineAtMs } from "./deadline.js";
import { thresholdReached } from "./plan.js";
import { mayActivateNow } from "./windows.js";
import { StepScheduler } from "./step-scheduler.js";
import { LiveRollouts, stillActive, type Live } from "./live-rollouts.js";
import { forwardControl, runQueuedCommands } from "./replica-commands.js";
import type { RolloutNews } from "../replicas/coordination.js";

export interface EngineDeps {
  store: StateStore;
  desired: DesiredState;
  hub: Pick<AgentHub, "isOnline">;
  log: Logger;
  now: () => number;
  /** Called at most once per step for each rollout that changed. */
  onRolloutChanged: (id: string) => void;
  /** Called once when a rollout completes or aborts, with its hosts as they stand. */
  onRolloutFinished?: (rollout: RolloutRecord) => void;
  /** Replicas sharing the database: a replica not driving rollouts hands starts and commands to the one that does. */
  replicas?: { announce: (news: RolloutNews) => Promise<void> } | undefined;
}

/** Deadlines, pauses and maintenance windows are checked this often. */
const TICK_MS = 1000;
/** Hosts given their next system per transaction. */
const ASSIGN_SLICE = 500;
/** Events that arrive this close together are handled by one step. */
const COALESCE_MS = 20;

/**
 * Drives every unfinished rollout. Work follows events: a host's report
 * marks that host, and a step reads only the marked hosts' records; events
 * close together share one step, and at most one step runs at a time. The
 * unfinished rollouts are held in memory and every change is written
 * through, so a controller killed at any moment reloads them, reads every
 * host once, and resumes where it stood without activating a host twice (a
 * host's progress is read from its own record, by the serial the rollout
 * gave it).
 */
export class RolloutEngine {
  private readonly live = new LiveRollouts();
  private timer: NodeJS.Timeout | undefined;
  private readonly steps: StepScheduler;
  private driving = false;
  private takingCommands = false;

  constructor(private readonly deps: EngineDeps) {
    this.steps = new StepScheduler(
      () => this.tickAll(),
      (error: unknown) => deps.log.error({ err: error instanceof Error ? error.stack : String(error) }, "rollout step failed"),
      COALESCE_MS,
    );
  }

  private get rollouts(): RolloutStore {
    return this.deps.store.rollouts;
  }

  /** Reads the unfinished rollouts from the store, as after a restart; start() does this first. */
  async load(): Promise<void> {
    for (const rollout of await this.rollouts.activeRollouts()) this.live.adopt(rollout);
  }

  /** Drives rollouts from now on: on a replica, once it holds the leader lock. */
  async start(): Promise<void> {
    await this.load();
    this.steps.resume();
    this.driving = true;
    this.timer = setInterval(() => {
      this.poke();
      if (this.deps.replicas) this.takeCommands();
    }, TICK_MS);
    this.poke();
    if (this.deps.replicas) this.takeCommands();
  }

  async stop(): Promise<void> {
    this.driving = false;
    clearInterval(this.timer);
    await this.steps.stop();
    this.live.clear();
  }

  /** Another replica started a rollout: drive it (the leader only). */
  async adopt(id: string): Promise<void> {
    if (!this.driving || this.live.get(id)) return;
    const rollout = await this.rollouts.getRollout(id);
    if (stillActive(rollout) && !this.live.get(id)) this.live.adopt(rollout);
    this.poke();
  }

  /** Runs the commands other replicas queued (the leader only). */
  takeCommands(): void {
    const commands = this.deps.store.commands;
    if (!this.driving || this.takingCommands) return;
    this.takingCommands = true;
    void runQueuedCommands(commands, (id, action, reason, options) => this.control(id, action, reason, options), this.deps.log)
      .catch((error: unknown) => this.deps.log.warn({ err: String(error) }, "reading queued rollout commands failed"))
      .finally(() => (this.takingCommands = false));
  }

  /** One step over every unfinished rollout, now. */
  runStep(): Promise<void> {
    return this.steps.exclusive(() => this.tickAll());
  }

  /** Resolves once no step is pending or running. */
  idle(): Promise<void> {
    return this.steps.idle();
  }

  /** Records a planned rollout and starts driving it. */
  async begin(plan: RolloutRecord): Promise<RolloutRecord> {
    await this.rollouts.createRollout(plan);
    if (!this.driving && this.deps.replicas) {
      await this.deps.replicas.announce({ kind: "started", rolloutId: plan.id });
      return plan;
    }
    this.live.adopt(structuredClone(plan));
    this.poke();
    return plan;
  }

  /** Hosts whose own record changed (a report, a deploy, a removal): the next step reads them. */
  hostsChanged(names: Iterable<string>): void {
    if (this.markChanged(names)) this.poke();
  }

  /** Marks hosts for the next step without asking for one; true if any is in a rollout. */
  markChanged(names: Iterable<string>): boolean {
    return this.live.mark(names);
  }

  /** Runs a step soon; steps never overlap, and events close together share one. */
  poke(): void {
    this.steps.request();
  }

  private async tickAll(): Promise<void> {
    const windows = await this.rollouts.listWindows();
    await releaseHeldDeploys(this.deps, windows);
    for (const live of this.live.all()) {
      await this.advance(live, windows);
      await this.flush(live);
      if (!stillActive(live.rollout)) this.live.retire(live);
    }
  }

  /** Writes the step's host changes in one transaction and announces the rollout once. */
  private async flush(live: Live): Promise<void> {
    if (live.patches.size > 0) {
      const patches = [...live.patches].map(([name, patch]) => ({ name, patch }));
      live.patches.clear();
      await this.rollouts.updateRolloutHosts(live.rollout.id, patches, this.deps.now());
    }
    if (live.changed) {
      live.changed = false;
      this.deps.onRolloutChanged(live.rollout.id);
    }
  }

  private log(rollout: RolloutRecord) {
    return this.deps.log.child({ rolloutId: rollout.id });
  }

  private setHost(live: Live, host: RolloutHostRecord, state: RolloutHostState, errorCode = "", errorMessage = ""): void {
    if (host.state === state && host.errorCode === errorCode) return;
    this.log(live.rollout).info({ host: host.name, from: host.state, to: state, code: errorCode || undefined }, `rollout host ${state}`);
    host.state = state;
    host.errorCode = errorCode;
    host.errorMessage = errorMessage;
    live.patches.set(host.name, { state, errorCode, errorMessage });
    live.changed = true;
  }

  /**
   * Gives hosts their next system through the one desired-state path, a
   * transaction per ASSIGN_SLICE hosts (a controller killed between two finds
   * the rest still pending and assigns them on its next step). A refusal (the closure gone from the cache) marks them
   * instead of stopping the rollout.
   */
  private async assign(
    live: Live,
    hosts: readonly RolloutHostRecord[],
    pathOf: (host: RolloutHostRecord) => string,
    activate: boolean,
    state: RolloutHostState,
  ): Promise<void> {
    // In slices, with a turn of the event loop between them: one transaction for a
    // 10,000-host prefetch held every agent's heartbeat for the whole of it.
    for await (const slice of slices(hosts, ASSIGN_SLICE)) await this.assignSlice(live, slice, pathOf, activate, state);
  }

  private async assignSlice(
    live: Live,
    hosts: readonly RolloutHostRecord[],
    pathOf: (host: RolloutHostRecord) => string,
    activate: boolean,
    state: RolloutHostState,
  ): Promise<void> {
    if (hosts.length === 0) return;
    const { rollout } = live;
    // Pending row changes first: the assignment writes the same rows after them.
    await this.flush(live);
    try {
      const records = await this.deps.desired.assign({
        deploymentId: rollout.id,
        mode: rollout.mode,
        requestedBy: rollout.requestedBy,
        targets: hosts.map((host) => {
          const storePath = pathOf(host);
          // The intent signed at the start approves the rollout's own system only; a revert goes out unsigned.
          return { hostName: host.name, storePath, activate, heldForWindow: false, intent: storePath === host.storePath ? host.intent : undefined };
        }),
        // A prefetch fetches from the cache; an activation or a revert uses what the host already holds.
        closures: state === "prefetching" ? { allowUnsigned: true } : "on-hosts",
        rollout: { id: rollout.id, state },
      });
      const serials = new Map(records.map((record) => [record.name, record.desiredSerial]));
      for (const host of hosts) {
        host.serial = serials.get(host.name) ?? host.serial;
        host.state = state;
        host.errorCode = "";
        host.errorMessage = "";
        live.patches.delete(host.name);
      }
      live.changed = true;
    } catch (error) {
      if (!(error instanceof FerryError)) throw error;
      if (error.code === "E_UNKNOWN_HOST") {
        // A host was removed meanwhile: the next step reads them all, skips it, and assigns the others.
        for (const host of hosts) live.dirty.add(host.name);
        this.poke();
        return;
      }
      for (const host of hosts) this.setHost(live, host, state === "prefetching" ? "unfetchable" : "failed", error.code, error.message);
    }
  }

  /** Reads the changed hosts' own records to learn how their step ended. */
  private async observe(live: Live): Promise<void> {
    if (live.dirty.size === 0) return;
    const names = [...live.dirty];
    live.dirty.clear();
    const records = new Map((await this.deps.store.findHosts(names)).map((record) => [record.name, record]));
    for (const name of names) {
      const host = live.byName.get(name);
      if (!host) continue;
      const record = records.get(name);
      if (!record) {
        if (!FINISHED.has(host.state)) this.setHost(live, host, "skipped", "E_UNKNOWN_HOST", "host removed during the rollout");
        continue;
      }
      live.tags.set(name, record.tags);
      const next = observeHost(host, record);
      if (next) this.setHost(live, host, next.state, next.errorCode, next.errorMessage);
    }
  }

  private async advance(live: Live, windows: readonly MaintenanceWindowRecord[]): Promise<void> {
    await this.observe(live);
    switch (live.rollout.state) {
      case "prefetching":
        return this.stepPrefetch(live);
      case "running":
        return this.stepWave(live, windows);
      case "aborted":
        // Hosts that were mid-activation when the rollout aborted finish later; revert them too.
        return this.revertConfirmed(live);
      default:
        return;
    }
  }

  private async stepPrefetch(live: Live): Promise<void> {
    const { rollout } = live;
    const now = this.deps.now();
    await this.assign(
      live,
      rollout.hosts.filter((h) => h.state === "pending"),
      (host) => host.storePath,
      false,
      "prefetching",
    );
    if (now > phaseDeadlineAtMs(rollout)) {
      for (const host of rollout.hosts.filter((h) => h.state === "prefetching")) {
        this.setHost(live, host, "unfetchable", "E_PREFETCH_TIMEOUT", "did not fetch its closure before the prefetch timeout");
      }
    }
    if (rollout.hosts.some((h) => h.state === "pending" || h.state === "prefetching")) return;
    const unfetchable = rollout.hosts.filter((h) => h.state === "unfetchable");
    if (unfetchable.length > 0 && !rollout.policy.skipUnfetchable) {
      const names = unfetchable.map((h) => `${h.name} (${h.errorCode || "error"})`).join(", ");
      return this.transition(live, "paused", `prefetch failed on ${names}; resume to skip them, or abort`);
    }
    for (const host of unfetchable) this.setHost(live, host, "skipped", host.errorCode, host.errorMessage);
    await this.beginWave(live, 1);
  }

  private async beginWave(live: Live, wave: number, resumeAtMs = 0): Promise<void> {
    const { rollout } = live;
    const now = this.deps.now();
    rollout.currentWave = wave;
    rollout.resumeAtMs = resumeAtMs;
    rollout.phaseStartedAtMs = Math.max(now, resumeAtMs);
    rollout.state = "running";
    rollout.reason = "";
    await this.rollouts.updateRollout(
      rollout.id,
      { state: "running", currentWave: wave, resumeAtMs, phaseStartedAtMs: rollout.phaseStartedAtMs, reason: "" },
      now,
    );
    this.log(rollout).info({ wave, waves: rollout.waveCount, resumeAt: resumeAtMs ? new Date(resumeAtMs).toISOString() : undefined }, "wave starting");
    live.changed = true;
  }

  private async transition(live: Live, state: RolloutRecord["state"], reason: string): Promise<void> {
    const { rollout } = live;
    rollout.state = state;
    rollout.reason = reason;
    await this.rollouts.updateRollout(rollout.id, { state, reason }, this.deps.now());
    this.log(rollout).info({ state, reason }, `rollout ${state}`);
    live.changed = true;
    if (state === "completed" || state === "aborted") this.deps.onRolloutFinished?.(rollout);
  }

  private async stepWave(live: Live, windows: readonly MaintenanceWindowRecord[]): Promise<void> {
    const { rollout } = live;
    const now = this.deps.now();
    const { policy } = rollout;
    const targets = rollout.hosts.filter((h) => h.state !== "skipped");
    const failed = targets.filter((h) => FAILED.has(h.state));
    const executed = targets.filter((h) => h.state === "confirmed" || FAILED.has(h.state));
    const canaryFailed = policy.canary.value > 0 && failed.some((h) => h.wave === 1);
    if (canaryFailed || thresholdReached(policy, targets.length, executed.length, failed.length)) {
      const why = canaryFailed ? "the canary failed" : `${failed.length} of ${executed.length} finished hosts failed`;
      return this.abort(live, `${why}: ${failed.map((h) => `${h.name} ${h.errorCode}`).join(", ")}`);
    }
    const unproven = unprovenCanaries(rollout);
    if (unproven.length > 0) return this.transition(live, "paused", unprovenReason(unproven));
    if (rollout.resumeAtMs > now) return;
    const wave = targets.filter((h) => h.wave === rollout.currentWave);
    if (wave.every((h) => FINISHED.has(h.state))) {
      if (rollout.currentWave >= rollout.waveCount) return this.transition(live, "completed", completionReason(rollout.hosts));
      if (policy.gate) return this.transition(live, "waiting-gate", `wave ${rollout.currentWave} done; promote to start wave ${rollout.currentWave + 1}`);
      return this.beginWave(live, rollout.currentWave + 1, policy.pauseMs > 0 ? now + policy.pauseMs : 0);
    }
    const deadline = phaseDeadlineAtMs(rollout);
    if (deadline > 0 && now > deadline) {
      const unbooted = wave.filter((h) => h.state === "boot-pending").map((h) => h.name);
      const detail = unbooted.length > 0 ? `; installed for the next boot but not running it yet: ${unbooted.join(", ")}` : "";
      return this.abort(live, `wave ${rollout.currentWave} exceeded its progress deadline${detail}`);
    }
    const unavailable = targets.filter((h) => IN_FLIGHT.has(h.state) || FAILED.has(h.state)).length;
    let slots = policy.maxUnavailable - unavailable;
    if (slots <= 0 && !targets.some((h) => IN_FLIGHT.has(h.state))) {
      return this.abort(live, `${failed.length} failed host(s) use up maxUnavailable (${policy.maxUnavailable})`);
    }
    const activate: RolloutHostRecord[] = [];
    for (const host of wave.filter((h) => h.state === "prefetched" || h.state === "waiting-window")) {
      if (slots <= 0) break;
      const tags = live.tags.get(host.name);
      if (!tags) continue;
      if (!mayActivateNow(host.name, tags, windows, now)) {
        this.setHost(live, host, "waiting-window");
        continue;
      }
      activate.push(host);
      slots -= 1;
    }
    await this.assign(live, activate, (host) => host.storePath, true, "activating");
  }

  private async abort(live: Live, reason: string): Promise<void> {
    await this.transition(live, "aborted", reason);
    await this.revertConfirmed(live);
  }

  private async revertConfirmed(live: Live): Promise<void> {
    const { rollout } = live;
    if (!rollout.policy.rollbackOnAbort) return;
    // A boot-pending host changed its boot default: put the previous system back there too.
    const revert = rollout.hosts.filter((h) => (h.state === "confirmed" || h.state === "boot-pending") && h.errorCode !== "E_ROLLBACK_FAILED");
    for (const host of revert.filter((h) => !h.previousSystem)) {
      this.setHost(live, host, host.state, "E_ROLLBACK_FAILED", "no previous system recorded; left as is");
    }
    await this.assign(
      live,
      revert.filter((h) => h.previousSystem),
      (host) => host.previousSystem,
      true,
      "reverting",
    );
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
  control(
    id: string,
    action: "pause" | "resume" | "abort" | "promote",
    reason: string,
    options: { acceptFailingChecks?: boolean } = {},
  ): Promise<RolloutRecord> {
    const { replicas } = this.deps;
    if (!this.driving && replicas) {
      return forwardControl(
        { commands: this.deps.store.commands, rollouts: this.rollouts, announce: (news) => replicas.announce(news), now: this.deps.now },
        id,
        action,
        reason,
        options,
      );
    }
    return this.steps.exclusive(async () => {
      const live = this.live.get(id);
      // A finished rollout is not held in memory: read it to say why the action is refused.
      const rollout = live?.rollout ?? (await this.rollouts.getRollout(id));
      const refuse = () => new FerryError("E_ROLLOUT_STATE", `cannot ${action} rollout ${id}: it is ${rollout.state}`);
      if (!live) throw refuse();
      switch (action) {
        case "pause":
          if (rollout.state !== "running" && rollout.state !== "prefetching") throw refuse();
          await this.transition(live, "paused", reason || "paused by operator");
          break;
        case "resume":
          if (rollout.state !== "paused") throw refuse();
          await this.acceptFailingChecks(rollout, options.acceptFailingChecks === true);
          if (rollout.currentWave === 0) {
            // Paused after prefetch: resuming means going on without the hosts that could not fetch.
            for (const host of rollout.hosts.filter((h) => h.state === "unfetchable")) this.setHost(live, host, "skipped", host.errorCode, host.errorMessage);
            if (rollout.hosts.every((h) => h.state !== "prefetching" && h.state !== "pending")) await this.beginWave(live, 1);
            else await this.transition(live, "prefetching", "");
          } else {
            // Time spent paused does not count against the wave's progress deadline.
            rollout.phaseStartedAtMs = this.deps.now();
            await this.rollouts.updateRollout(rollout.id, { phaseStartedAtMs: rollout.phaseStartedAtMs }, this.deps.now());
            await this.transition(live, "running", "");
          }
          break;
        case "promote":
          if (rollout.state !== "waiting-gate") throw refuse();
          await this.beginWave(live, rollout.currentWave + 1);
          break;
        case "abort":
          if (rollout.state === "completed" || rollout.state === "aborted") throw refuse();
          await this.abort(live, reason || "aborted by operator");
          break;
      }
      await this.flush(live);
      this.poke();
      return structuredClone(rollout);
    });
  }
}
