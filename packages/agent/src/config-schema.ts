import type { JSONSchemaType } from "ajv";
import { DEFAULT_MODE, MODES, MODE_SUMMARY, type Mode } from "@ferry/core";

// The shape of the agent's configuration: its types and the one JSON schema.
// The validator the agent runs is generated from this schema by `npm run gen`
// (../gen-config-validator.mjs) and committed, so that no schema compiler
// loads at start-up.

/**
 * A host's own default mode, used when a deployment names none. `test` is left
 * out: a host whose default forgets every deployment at its next reboot is a
 * choice to make per deployment, not by accident.
 */
export type Strategy = Exclude<Mode, "test">;
const STRATEGIES: readonly Strategy[] = MODES.filter((mode): mode is Strategy => mode !== "test");

export interface SystemdCheck {
  type: "systemd";
  units: string[];
  strict: boolean;
}
export interface HttpCheck {
  type: "http";
  url: string;
  expectStatus: number;
  bodyContains?: string;
  timeout: number;
  strict: boolean;
}
export interface CommandCheck {
  type: "command";
  argv: string[];
  timeout: number;
  strict: boolean;
}
export type HealthCheck = SystemdCheck | HttpCheck | CommandCheck;

export interface AgentConfig {
  /** The controller keys: `ferry agent` needs them (requireControllerSettings); a standalone host that only runs apply-bundle does not. */
  controllerUrl?: string;
  /** Several controller replicas sharing one database; the agent holds one link, to any of them. Excludes controllerUrl. */
  controllerUrls?: string[];
  hostName: string;
  tokenFile?: string;
  substituters?: string[];
  trustedPublicKeys: string[];
  stateDir: string;
  profile: string;
  /** Where the running system is linked; NixOS: /run/current-system. */
  currentSystemLink: string;
  strategy: Strategy;
  confirmTimeout: number;
  /** Unset: confirmTimeout (see settings.ts). */
  preSwitchControllerWait?: number;
  activationTimeout: number;
  fetchTimeout: number;
  keepGenerations: number;
  /** Cron expression (local time) for generation clean-up and GC; "" disables it. */
  gcSchedule: string;
  /** Lock file switch-to-configuration takes; found held, the agent refuses to switch. */
  switchLockFile: string;
  /** Free space on /nix that a fetch must leave untouched, in MiB. */
  diskReserveMiB: number;
  healthChecks: HealthCheck[];
  /** After an activation settles, restart into the agent build the running system's unit names (see self-restart.ts). */
  selfRestart: boolean;
  heartbeatInterval: number;
  reconnectMaxDelay: number;
  logLevel: "debug" | "info" | "warn" | "error";
  /** apply-bundle: the site this host belongs to; bundles for another site (or none) are refused. */
  bundleSiteName?: string;
  /** apply-bundle: the lowest bundle sequence this host takes, even with an empty ledger. */
  bundleMinSequence?: number;
  /** CA bundle for wss:// and https:// (controller link and Nix), instead of the system trust store. */
  caFile?: string;
  /** Client certificate (PEM, chain allowed) and key for a controller that asks agents for one. */
  tlsCertFile?: string;
  tlsKeyFile?: string;
  /** Directory node-exporter's textfile collector reads; the agent writes ferry_agent.prom there. Unset: no metrics file. */
  metricsTextfileDir?: string;
  /** Permits ws:// and http:// to a non-loopback address: the token would cross the network in clear. */
  allowInsecureTransport: boolean;
  /** Keys (Nix format) whose signed deploy intents this host accepts. */
  intentPublicKeys: string[];
  /** Refuse every deployment and dry run that carries no intent signed by one of intentPublicKeys. */
  requireSignedIntents: boolean;
  /** Without requireSignedIntents: the modes a controller may ask for without a signed intent. */
  allowedUnsignedModes: UnsignedMode[];
}

/** What a deployment or dry run may do without a signed intent, when the host allows it. */
export type UnsignedMode = Mode | "dry-activate";
export const UNSIGNED_MODES: readonly UnsignedMode[] = [...MODES, "dry-activate"];
/** The keys only a host with a controller needs (controllerUrls stands in for controllerUrl). */
export const CONTROLLER_KEYS = ["controllerUrl", "tokenFile", "substituters"] as const;
const CONNECTED_ONLY = "Required by `ferry agent`; a standalone host that only runs `ferry agent apply-bundle` leaves it out.";

/** The configuration of an agent that connects to a controller: what `ferry agent` runs with. */
export type ConnectedAgentConfig = AgentConfig & Required<Pick<AgentConfig, "tokenFile" | "substituters">>;

const CHECK_COMMON = { strict: { type: "boolean", default: false } } as const;

/**
 * The one schema of the agent's configuration: the agent validates against it
 * at start-up and `ferry agent schema` prints it for the NixOS module's tests.
 */
export const AGENT_CONFIG_SCHEMA: JSONSchemaType<AgentConfig> = {
  $id: "https://ferry.invalid/schemas/agent-config.json",
  title: "Ferry agent configuration",
  type: "object",
  additionalProperties: false,
  required: ["hostName", "trustedPublicKeys"],
  properties: {
    controllerUrl: {
      type: "string",
      nullable: true,
      pattern: "^wss?://[^\\s]+$",
      description: `WebSocket URL of the controller's agent endpoint, e.g. wss://controller:7070/agent; ws:// only to loopback unless allowInsecureTransport is set. ${CONNECTED_ONLY} Several replicas: controllerUrls instead.`,
    },
    controllerUrls: {
      type: "array",
      nullable: true,
      minItems: 1,
      uniqueItems: true,
      items: { type: "string", pattern: "^wss?://[^\\s]+$" },
      description:
        "Instead of controllerUrl: the agent endpoints of several controller replicas sharing one database. The agent keeps one link, starts at a random one and moves to the next when a link fails; any of their hosts counts as the controller's host for substituter credentials.",
    },
    hostName: { type: "string", minLength: 1, maxLength: 253, description: "Name this host was registered with (ferry host add)." },
    tokenFile: {
      type: "string",
      nullable: true,
      minLength: 1,
      description: `File holding this host's agent token; read at every connection. ${CONNECTED_ONLY}`,
    },
    substituters: {
      type: "array",
      nullable: true,
      minItems: 1,
      items: { type: "string", pattern: "^(https?|file)://[^\\s]+$" },
      description: `Binary caches to fetch closures from; http:// only to loopback unless allowInsecureTransport is set. Those on the controller's host get this host's name and token (netrc) for a private cache. ${CONNECTED_ONLY}`,
    },
    trustedPublicKeys: {
      type: "array",
      minItems: 1,
      items: { type: "string", pattern: "^[^\\s:]+:[A-Za-z0-9+/=]+$" },
      description: "Only paths signed by one of these keys are accepted.",
    },
    stateDir: { type: "string", default: "/var/lib/ferry-agent", description: "Where the agent keeps its transaction state and GC roots." },
    profile: { type: "string", default: "/nix/var/nix/profiles/system", description: "System profile to switch." },
    currentSystemLink: { type: "string", default: "/run/current-system", description: "Symlink to the running system." },
    strategy: {
      type: "string",
      enum: STRATEGIES,
      default: DEFAULT_MODE,
      description: `How a new system is activated when the deployment names no mode: ${STRATEGIES.map((mode) => `${mode} (${MODE_SUMMARY[mode]})`).join("; ")}.`,
    },
    confirmTimeout: { type: "number", minimum: 1, default: 120, description: "Seconds a new system has to prove itself healthy." },
    preSwitchControllerWait: {
      type: "number",
      nullable: true,
      minimum: 0,
      description:
        "Seconds the agent keeps trying to reach the controller just before a switch (it never switches a host the controller could not then judge); 0 tries once. Unset: confirmTimeout.",
    },
    activationTimeout: { type: "number", minimum: 1, default: 600, description: "Seconds after which a hung switch-to-configuration is killed." },
    fetchTimeout: { type: "number", minimum: 1, default: 3600, description: "Seconds allowed for realising a closure." },
    keepGenerations: { type: "integer", minimum: 1, default: 5, description: "System generations kept when collecting garbage." },
    gcSchedule: {
      type: "string",
      default: "30 3 * * *",
      description:
        "When to delete old generations and collect garbage, in local time: a cron expression (minute hour day month weekday, an optional seconds field first; node-cron's extensions are accepted too); empty disables it.",
    },
    diskReserveMiB: { type: "number", minimum: 0, default: 1024, description: "MiB of free space on /nix a fetch must leave." },
    switchLockFile: {
      type: "string",
      default: "/run/nixos/switch-to-configuration.lock",
      description: "Lock taken by switch-to-configuration; while someone else holds it the agent reports E_SWITCH_LOCKED instead of switching.",
    },
    healthChecks: {
      type: "array",
      default: [],
      items: {
        type: "object",
        required: ["type"],
        // With a discriminator Ajv picks the branch by "type", which also lets it fill that branch's defaults.
        discriminator: { propertyName: "type" },
        oneOf: [
          {
            type: "object",
            additionalProperties: false,
            required: ["type", "units"],
            properties: { type: { type: "string", const: "systemd" }, units: { type: "array", minItems: 1, items: { type: "string" } }, ...CHECK_COMMON },
          },
          {
            type: "object",
            additionalProperties: false,
            required: ["type", "url"],
            properties: {
              type: { type: "string", const: "http" },
              url: { type: "string", pattern: "^https?://" },
              expectStatus: { type: "integer", default: 200 },
              bodyContains: { type: "string", nullable: true },
              timeout: { type: "number", minimum: 0.1, default: 5 },
              ...CHECK_COMMON,
            },
          },
          {
            type: "object",
            additionalProperties: false,
            required: ["type", "argv"],
            properties: {
              type: { type: "string", const: "command" },
              argv: { type: "array", minItems: 1, items: { type: "string" } },
              timeout: { type: "number", minimum: 0.1, default: 30 },
              ...CHECK_COMMON,
            },
          },
        ],
      } as unknown as JSONSchemaType<HealthCheck>,
    },
    selfRestart: {
      type: "boolean",
      default: false,
      description:
        "After an activation settles, if the running system's ferry-agent.service starts another agent build (package or arguments), exit with status 75 so that the service manager starts that build. Only where something restarts the agent on that status: the NixOS module sets it with RestartForceExitStatus=75.",
    },
    heartbeatInterval: { type: "number", minimum: 0.1, default: 10, description: "Seconds between heartbeats to the controller." },
    reconnectMaxDelay: { type: "number", minimum: 0.1, default: 60, description: "Upper bound, in seconds, of the reconnect backoff." },
    logLevel: { type: "string", enum: ["debug", "info", "warn", "error"], default: "info" },
    bundleSiteName: {
      type: "string",
      nullable: true,
      pattern: "^[A-Za-z0-9.-]{1,253}$",
      description: "apply-bundle: this host's site; bundles made for another site, or naming none, are refused.",
    },
    bundleMinSequence: {
      type: "integer",
      minimum: 1,
      nullable: true,
      description: "apply-bundle: the lowest bundle sequence taken, so that a fresh host does not accept any old signed bundle.",
    },
    caFile: {
      type: "string",
      nullable: true,
      minLength: 1,
      description: "PEM CA bundle that signed the controller's certificate, used instead of the system trust store (controller link and Nix fetches).",
    },
    tlsCertFile: {
      type: "string",
      nullable: true,
      minLength: 1,
      description: "Client certificate (PEM) presented to a controller started with --agent-client-ca; needs tlsKeyFile.",
    },
    tlsKeyFile: { type: "string", nullable: true, minLength: 1, description: "Private key (PEM) of tlsCertFile." },
    metricsTextfileDir: {
      type: "string",
      nullable: true,
      pattern: "^/",
      description:
        "Absolute directory read by node-exporter's textfile collector: the agent replaces ferry_agent.prom there on start and after each transaction (step durations, rollbacks, health checks, fetched bytes). Unset: no metrics file.",
    },
    allowInsecureTransport: {
      type: "boolean",
      default: false,
      description: "Allow ws:// and http:// to a non-loopback address. The agent token then crosses the network in clear: only on a network you trust.",
    },
    intentPublicKeys: {
      type: "array",
      default: [],
      items: { type: "string", pattern: "^[A-Za-z0-9._+-]{1,100}:[A-Za-z0-9+/]{43}=$" },
      description: "Ed25519 public keys (Nix format, NAME:BASE64) of the operators or CI allowed to sign deploy intents for this host.",
    },
    requireSignedIntents: {
      type: "boolean",
      default: false,
      description:
        "Refuse any deployment, dry run or bundle without a deploy intent signed by one of intentPublicKeys; a controller can then withhold updates but never choose them.",
    },
    allowedUnsignedModes: {
      type: "array",
      uniqueItems: true,
      items: { type: "string", enum: UNSIGNED_MODES },
      default: [...UNSIGNED_MODES],
      description:
        "Without requireSignedIntents: the modes (after the host's own strategy fills in a deployment naming none) and dry-activate a controller may ask for without a signed intent; e.g. leave out boot, which skips the trial.",
    },
  },
};
