import { controllerUrlsOf, type AgentConfig, type HealthCheck, type Strategy } from "./config.js";

/**
 * The agent's configuration as the code uses it: compiled once from the file
 * form (config.ts, in seconds, as operators write it) into durations in
 * milliseconds with every default filled in. Nothing downstream multiplies by
 * 1000 or falls back to another key.
 */
export interface AgentSettings {
  /** controllerUrl or controllerUrls, as one list; empty on a standalone host (apply-bundle only). startAgent requires them. */
  readonly controllerUrls: readonly string[];
  readonly hostName: string;
  readonly tokenFile: string | undefined;
  /** Empty on a standalone host, which fetches only from the bundle it applies. */
  readonly substituters: string[];
  readonly trustedPublicKeys: string[];
  readonly stateDir: string;
  readonly profile: string;
  readonly currentSystemLink: string;
  readonly strategy: Strategy;
  readonly keepGenerations: number;
  readonly gcSchedule: string;
  readonly switchLockFile: string;
  readonly diskReserveMiB: number;
  readonly healthChecks: HealthCheck[];
  readonly logLevel: AgentConfig["logLevel"];
  readonly selfRestart: boolean;
  /** How long the new system has to prove itself, from the end of the switch. */
  readonly confirmTimeoutMs: number;
  /** How long switch-to-configuration may run before it is killed. */
  readonly activationTimeoutMs: number;
  readonly fetchTimeoutMs: number;
  /** How long to keep trying to reach the controller just before switching. */
  readonly preSwitchControllerWaitMs: number;
  readonly heartbeatIntervalMs: number;
  readonly reconnectMaxDelayMs: number;
  readonly bundleSiteName: string | undefined;
  readonly caFile: string | undefined;
  readonly tlsCertFile: string | undefined;
  readonly tlsKeyFile: string | undefined;
  readonly allowInsecureTransport: boolean;
  readonly intentPublicKeys: string[];
  readonly requireSignedIntents: boolean;
  readonly allowedUnsignedModes: AgentConfig["allowedUnsignedModes"];
  readonly bundleMinSequence: number | undefined;
  readonly metricsTextfileDir: string | undefined;
}

const seconds = (value: number): number => Math.round(value * 1000);

export function compileAgentConfig(config: AgentConfig): AgentSettings {
  return {
    controllerUrls: controllerUrlsOf(config),
    hostName: config.hostName,
    tokenFile: config.tokenFile,
    substituters: [...(config.substituters ?? [])],
    trustedPublicKeys: [...config.trustedPublicKeys],
    stateDir: config.stateDir,
    profile: config.profile,
    currentSystemLink: config.currentSystemLink,
    strategy: config.strategy,
    keepGenerations: config.keepGenerations,
    gcSchedule: config.gcSchedule,
    switchLockFile: config.switchLockFile,
    diskReserveMiB: config.diskReserveMiB,
    healthChecks: structuredClone(config.healthChecks),
    logLevel: config.logLevel,
    selfRestart: config.selfRestart,
    confirmTimeoutMs: seconds(config.confirmTimeout),
    activationTimeoutMs: seconds(config.activationTimeout),
    fetchTimeoutMs: seconds(config.fetchTimeout),
    // Unset, the agent waits as long as it would give the new system to confirm: the behaviour before this was a setting.
    preSwitchControllerWaitMs: seconds(config.preSwitchControllerWait ?? config.confirmTimeout),
    heartbeatIntervalMs: seconds(config.heartbeatInterval),
    reconnectMaxDelayMs: seconds(config.reconnectMaxDelay),
    bundleSiteName: config.bundleSiteName,
    caFile: config.caFile,
    tlsCertFile: config.tlsCertFile,
    tlsKeyFile: config.tlsKeyFile,
    allowInsecureTransport: config.allowInsecureTransport,
    intentPublicKeys: [...config.intentPublicKeys],
    requireSignedIntents: config.requireSignedIntents,
    allowedUnsignedModes: [...config.allowedUnsignedModes],
    bundleMinSequence: config.bundleMinSequence,
    metricsTextfileDir: config.metricsTextfileDir,
  };
}

/** Accepts either form, so an embedder holding the file form need not compile it; compiled settings pass through untouched. */
export function settingsOf(config: AgentConfig | AgentSettings): AgentSettings {
  return "confirmTimeoutMs" in config ? config : compileAgentConfig(config);
}
