import { mkdirSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { Nix, ProcessRunner, type CommandRunner, type Logger } from "@ferry/core";
import { HostPhase } from "@ferry/protocol/agent-channel";
import { assertChecksRunnable } from "./check-validation.js";
import { requireControllerSettings, type AgentConfig } from "./config.js";
import { agentVersion, describeBuild, runningBuild } from "./agent-build.js";
import { ControllerLink } from "./controller-link.js";
import { dryActivate } from "./dry-activate.js";
import type { LogForwarder } from "./log-forwarder.js";
import { faultInjectionFromEnv } from "./fault-injection.js";
import { IntentFloor } from "./intent-floor.js";
import { IntentGate } from "./intent-policy.js";
import { scheduleGarbageCollection } from "./garbage-collection.js";
import { Reconciler } from "./reconciler.js";
import { compileAgentConfig } from "./settings.js";
import { RESTART_EXIT_STATUS, SelfRestart } from "./self-restart.js";
import { StateFile } from "./state-file.js";
import { SwitchLock } from "./switch-lock.js";
import { ActivationTransaction } from "./transaction.js";
import { AgentMetricsFile } from "./metrics-textfile.js";

export interface RunningAgent {
  stop(): Promise<void>;
  /** Resolves with the exit status the agent asks for on its own (a restart into a new build); stop() it first. */
  exitRequested: Promise<number>;
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
  fileConfig: AgentConfig,
  log: Logger,
  runner: CommandRunner = new ProcessRunner(),
  forwarder?: LogForwarder,
): Promise<RunningAgent> {
  // Before anything else: a standalone host's configuration names no controller to connect to.
  const connected = requireControllerSettings(fileConfig);
  // An agent whose checks cannot run would confirm any system.
  await assertChecksRunnable(fileConfig.healthChecks, runner);
  const config = compileAgentConfig(connected);
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  const hostLog = log.child({ host: config.hostName });
  const state = new StateFile(config.stateDir, hostLog);
  const nix = new Nix(runner);
  const running = runningBuild();
  const link: ControllerLink = new ControllerLink({
    urls: config.controllerUrls,
    hostName: config.hostName,
    tokenFile: connected.tokenFile,
    tls: { caFile: config.caFile, certFile: config.tlsCertFile, keyFile: config.tlsKeyFile },
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    reconnectMaxDelayMs: config.reconnectMaxDelayMs,
    log: hostLog,
    agentVersion: agentVersion(running),
    hello: () => ({
      currentSystem: transaction.currentSystem(),
      appliedSerial: state.state.appliedSerial,
      phase: reportedPhase(state, transaction.currentSystem()),
    }),
  });
  const afterPersist = faultInjectionFromEnv(hostLog);
  // One lock for every switch script this agent runs: activations, their rollbacks, dry-activates.
  const switchLock = new SwitchLock(config.switchLockFile);
  const metrics = config.metricsTextfileDir ? await AgentMetricsFile.open(config.metricsTextfileDir, hostLog) : undefined;
  void metrics?.write();
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
    // Any replica answering counts: reachable() tries the next URL while the link is down.
    heartbeat: (timeoutMs) => link.reachable(timeoutMs, transaction.currentSystem()),
    switchLock,
    metrics,
    ...(afterPersist ? { afterPersist } : {}),
  });
  forwarder?.attach((line) => link.send({ $case: "log", value: { ...line, hostName: config.hostName } }));
  const selfRestart = new SelfRestart({
    settings: config,
    state,
    log: hostLog,
    running,
    currentSystem: () => transaction.currentSystem(),
    switchLock,
    now: Date.now,
    ...(afterPersist ? { pause: afterPersist } : {}),
  });
  selfRestart.reportPreviousRestart();
  let requestExit: (status: number) => void = () => undefined;
  const exitRequested = new Promise<number>((resolve) => (requestExit = resolve));
  const intents = new IntentGate(config, new IntentFloor(config.stateDir), Date.now);
  const reconciler = new Reconciler(transaction, state, link, config, hostLog, intents, async () => {
    if (!(await selfRestart.afterSettled())) return false;
    requestExit(RESTART_EXIT_STATUS);
    return true;
  });
  link.on("desired", (desired) => reconciler.onDesired(desired));
  link.on("connected", () => reconciler.onConnected());
  link.on("dryActivate", (command) => {
    void dryActivate(command, config, nix, switchLock, hostLog, intents).then((outcome) => link.send({ $case: "dryActivateOutcome", value: outcome }));
  });
  // The link starts at once: resuming a confirmation needs the heartbeat.
  link.start();
  hostLog.info(
    {
      controllerUrls: config.controllerUrls,
      stateDir: config.stateDir,
      strategy: config.strategy,
      currentSystem: transaction.currentSystem(),
      version: agentVersion(running),
      build: describeBuild(running),
    },
    "agent started",
  );
  void reconciler.resume();
  const gc = scheduleGarbageCollection(config, nix, hostLog, () => reconciler.busy);
  return {
    exitRequested,
    async stop() {
      gc?.stop();
      link.stop();
      await reconciler.idle();
      state.close();
    },
  };
}
