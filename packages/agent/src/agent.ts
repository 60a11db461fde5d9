import { mkdirSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { Nix, ProcessRunner, type CommandRunner, type Logger } from "@ferry/core";
import { HostPhase } from "@ferry/protocol";
import type { AgentConfig } from "./config.js";
import { ControllerLink } from "./controller-link.js";
import { dryActivate } from "./dry-activate.js";
import type { LogForwarder } from "./log-forwarder.js";
import { faultInjectionFromEnv } from "./fault-injection.js";
import { IntentFloor } from "./intent-floor.js";
import { IntentGate } from "./intent-policy.js";
import { scheduleGarbageCollection } from "./garbage-collection.js";
import { Reconciler } from "./reconciler.js";
import { StateFile } from "./state-file.js";
import { ActivationTransaction } from "./transaction.js";

export interface RunningAgent {
  stop(): Promise<void>;
}

/** The phase to announce on connect; a boot-pending system that now runs has arrived. */
function reportedPhase(state: StateFile, current: string): HostPhase {
  if (state.state.transaction) return HostPhase.HOST_PHASE_ACTIVATING;
  const last = state.state.lastResult;
  if (!last) return HostPhase.HOST_PHASE_IDLE;
  if (last.phase === HostPhase.HOST_PHASE_BOOT_PENDING && last.storePath === current) return HostPhase.HOST_PHASE_ACTIVE;
  return last.phase;
}

export async function startAgent(
  config: AgentConfig,
  log: Logger,
  runner: CommandRunner = new ProcessRunner(),
  forwarder?: LogForwarder,
): Promise<RunningAgent> {
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  const hostLog = log.child({ host: config.hostName });
  const state = new StateFile(config.stateDir, hostLog);
  const nix = new Nix(runner);
  const link: ControllerLink = new ControllerLink({
    url: config.controllerUrl,
    hostName: config.hostName,
    tokenFile: config.tokenFile,
    heartbeatIntervalMs: config.heartbeatInterval * 1000,
    reconnectMaxDelayMs: config.reconnectMaxDelay * 1000,
    log: hostLog,
    hello: () => ({
      currentSystem: transaction.currentSystem(),
      appliedSerial: state.state.appliedSerial,
      phase: reportedPhase(state, transaction.currentSystem()),
    }),
  });
  const afterPersist = faultInjectionFromEnv(hostLog);
  const transaction: ActivationTransaction = new ActivationTransaction({
    config,
    nix,
    runner,
    state,
    log: hostLog,
    now: Date.now,
    sleep: (ms) => sleep(ms),
    progress: (serial, phase, message) => {
      link.send({ $case: "progress", value: { hostName: config.hostName, serial, phase, message, bytesDone: 0, bytesTotal: 0 } });
    },
    heartbeat: (timeoutMs) => link.roundTrip(timeoutMs, transaction.currentSystem()),
    ...(afterPersist ? { afterPersist } : {}),
  });
  forwarder?.attach((line) => link.send({ $case: "log", value: { ...line, hostName: config.hostName } }));
  const intents = new IntentGate(config, new IntentFloor(config.stateDir), Date.now);
  const reconciler = new Reconciler(transaction, state, link, config, hostLog, intents);
  link.on("desired", (desired) => reconciler.onDesired(desired));
  link.on("connected", () => reconciler.onConnected());
  link.on("dryActivate", (command) => {
    void dryActivate(command, config, nix, hostLog, intents).then((outcome) => link.send({ $case: "dryActivateOutcome", value: outcome }));
  });
  // The link starts at once: resuming a confirmation needs the heartbeat.
  link.start();
  hostLog.info(
    { controllerUrl: config.controllerUrl, stateDir: config.stateDir, strategy: config.strategy, currentSystem: transaction.currentSystem() },
    "agent started",
  );
  void reconciler.resume();
  const gc = scheduleGarbageCollection(config, nix, hostLog, () => reconciler.busy);
  return {
    async stop() {
      gc?.stop();
      link.stop();
      await reconciler.idle();
    },
  };
}
