import { mkdirSync } from "node:fs";
import { Nix, ProcessRunner, type CommandRunner, type Logger } from "@ferry/core";
import { HostPhase } from "@ferry/protocol";
import { Activation } from "./activation.js";
import type { AgentConfig } from "./config.js";
import { ControllerLink } from "./controller-link.js";
import { Reconciler } from "./reconciler.js";
import { StateFile } from "./state-file.js";

export interface RunningAgent {
  stop(): Promise<void>;
}

export async function startAgent(config: AgentConfig, log: Logger, runner: CommandRunner = new ProcessRunner()): Promise<RunningAgent> {
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  const hostLog = log.child({ host: config.hostName });
  const state = new StateFile(config.stateDir, hostLog);
  const nix = new Nix(runner);
  let link: ControllerLink | undefined;
  const activation = new Activation({
    config,
    nix,
    state,
    log: hostLog,
    now: Date.now,
    progress: (serial, phase, message) => {
      link?.send({ $case: "progress", value: { hostName: config.hostName, serial, phase, message, bytesDone: 0, bytesTotal: 0 } });
    },
  });
  link = new ControllerLink({
    url: config.controllerUrl,
    hostName: config.hostName,
    tokenFile: config.tokenFile,
    heartbeatIntervalMs: config.heartbeatInterval * 1000,
    reconnectMaxDelayMs: config.reconnectMaxDelay * 1000,
    log: hostLog,
    hello: () => ({
      currentSystem: activation.currentSystem(),
      appliedSerial: state.state.appliedSerial,
      phase: state.state.transaction ? HostPhase.HOST_PHASE_ACTIVATING : (state.state.lastResult?.phase ?? HostPhase.HOST_PHASE_IDLE),
    }),
  });
  const reconciler = new Reconciler(activation, state, link, hostLog);
  // Finish local business first: a half-done switch must be settled whether or not the controller is reachable.
  await reconciler.resume();
  link.on("desired", (desired) => reconciler.onDesired(desired));
  link.on("connected", () => reconciler.onConnected());
  link.start();
  hostLog.info({ controllerUrl: config.controllerUrl, stateDir: config.stateDir, currentSystem: activation.currentSystem() }, "agent started");
  return {
    async stop() {
      link?.stop();
      await reconciler.idle();
    },
  };
}
