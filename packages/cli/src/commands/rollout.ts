import { readFileSync } from "node:fs";
import { hostname, userInfo } from "node:os";
import { FerryError, assertHostName, formatMode, modeToWire, parseOptionalMode } from "@ferry/core";
import { RolloutAction, type Rollout, type RolloutPolicy, type SignedIntent } from "@ferry/protocol";
import { CONNECTION_OPTIONS, parse, positiveSeconds } from "../args.js";
import { withConnection, type OperatorConnection } from "../client.js";
import { EXIT_NOT_EVERY_HOST, createOutput, table, type Output } from "../output.js";
import { isFinished, renderRollout, rolloutCounts } from "../rollout-view.js";
import { formatQuantity, parseCount, parseDuration, parseQuantity } from "../units.js";
import { parseTarget } from "./deploy.js";
import { INTENT_EXPIRY, INTENT_OPTIONS, intentExpiryMs, intentKey, readIntentsFile, signTargets } from "../intents.js";

export async function rolloutCommand(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  switch (verb) {
    case "start":
      return rolloutStart(rest);
    case "status":
      return rolloutStatus(rest);
    case "list":
      return rolloutList(rest);
    case "pause":
    case "resume":
    case "abort":
    case "promote":
      return rolloutControl(verb, rest);
    default:
      throw new FerryError("E_BAD_ARGUMENT", `unknown verb 'rollout ${verb ?? ""}': use start, status, list, pause, resume, abort or promote`);
  }
}

export function readManifest(file: string): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw new FerryError("E_BAD_ARGUMENT", `cannot read manifest ${file}: ${(error as Error).message}`);
  }
  const hosts = (parsed as { hosts?: unknown } | null)?.hosts;
  if (typeof hosts !== "object" || hosts === null || Array.isArray(hosts))
    throw new FerryError("E_BAD_ARGUMENT", `${file} must look like {"hosts": {"HOST": "/nix/store/…"}}`);
  const entries = Object.entries(hosts as Record<string, unknown>);
  return Object.fromEntries(entries.map(([host, path]) => [assertHostName(host), parseTarget(`${host}=${String(path)}`).storePath]));
}

async function rolloutStart(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    ...CONNECTION_OPTIONS,
    manifest: { type: "string" },
    hosts: { type: "string" },
    tag: { type: "string", multiple: true, default: [] },
    environment: { type: "string", default: "" },
    after: { type: "string", default: "" },
    canary: { type: "string" },
    batch: { type: "string" },
    "max-unavailable": { type: "string" },
    "failure-threshold": { type: "string" },
    "min-executed": { type: "string" },
    pause: { type: "string" },
    gate: { type: "boolean", default: false },
    "progress-deadline": { type: "string" },
    "prefetch-timeout": { type: "string" },
    "skip-unfetchable": { type: "boolean", default: false },
    "rollback-on-abort": { type: "boolean", default: false },
    mode: { type: "string" },
    "allow-unsigned": { type: "boolean", default: false },
    wait: { type: "boolean", default: false },
    timeout: { type: "string" },
    ...INTENT_OPTIONS,
  });
  if (values.gate && values.pause) throw new FerryError("E_BAD_ARGUMENT", "--pause and --gate exclude each other");
  const key = intentKey(values);
  const mode = parseOptionalMode(values.mode);
  const policy: RolloutPolicy = {
    canary: values.canary ? parseQuantity(values.canary, "--canary") : undefined,
    batch: values.batch ? parseQuantity(values.batch, "--batch") : undefined,
    maxUnavailable: parseCount(values["max-unavailable"], "--max-unavailable", 1),
    failureThreshold: values["failure-threshold"] ? parseQuantity(values["failure-threshold"], "--failure-threshold") : undefined,
    minExecuted: parseCount(values["min-executed"], "--min-executed", 1),
    pauseMs: values.pause ? parseDuration(values.pause, "--pause") : 0,
    gate: values.gate,
    progressDeadlineMs: values["progress-deadline"] ? parseDuration(values["progress-deadline"], "--progress-deadline") : 0,
    rollbackOnAbort: values["rollback-on-abort"],
    prefetchTimeoutMs: values["prefetch-timeout"] ? parseDuration(values["prefetch-timeout"], "--prefetch-timeout") : 0,
    skipUnfetchable: values["skip-unfetchable"],
  };
  const out = createOutput(values.json);
  const targets = positionals.map(parseTarget);
  const hostNames = values.hosts ? values.hosts.split(",").filter(Boolean).map(assertHostName) : [];
  const manifest = values.manifest ? readManifest(values.manifest) : {};
  return withConnection(values, async (connection) => {
    let intents: SignedIntent[] = values.intents === undefined ? [] : readIntentsFile(values.intents);
    if (key) {
      // Signed now, for exactly the hosts this rollout selects: the waves can only release what was signed here.
      const selected = await selectedTargets(connection, { targets, manifest, hostNames, tags: values.tag });
      intents = signTargets(selected, mode ?? "default", key, intentExpiryMs(values, INTENT_EXPIRY.rollout));
      out.note(`signed ${intents.length} intent(s) with ${key.name}`);
      if (values["rollback-on-abort"]) out.note("note: reverts on abort go out unsigned; hosts that require signed intents refuse them");
    }
    const { rollout } = await connection.call(connection.client.startRollout, {
      targets: targets.map((target) => ({ ...target, intent: undefined })),
      hostNames,
      tags: values.tag,
      manifest,
      intents,
      policy,
      environment: values.environment,
      afterEnvironment: values.after,
      requestedBy: `${userInfo().username}@${hostname()}`,
      mode: modeToWire(mode),
      allowUnsigned: values["allow-unsigned"],
    });
    if (!rollout) throw new FerryError("E_INTERNAL", "the controller returned no rollout");
    out.note(`started rollout ${rollout.id}: ${rollout.hosts.length} host(s) in ${rollout.waveCount} wave(s)`);
    if (!values.wait) {
      out.result({ rollout: rolloutJson(rollout) }, () => renderRollout(rollout));
      return 0;
    }
    const final = await follow(connection, rollout.id, positiveSeconds(values.timeout, "--timeout", 3600) * 1000, out);
    out.result({ rollout: rolloutJson(final) }, () => `rollout ${final.id} ${final.state}: ${final.reason}\n`);
    return exitStatus(final);
  });
}

/**
 * The hosts a rollout will cover, as the controller will select them: named
 * hosts and tagged hosts that have a path, or every host with a path. Tag
 * membership is the controller's word; name hosts (--hosts) to sign for
 * exactly those.
 */
async function selectedTargets(
  connection: OperatorConnection,
  selection: { targets: { hostName: string; storePath: string }[]; manifest: Record<string, string>; hostNames: string[]; tags: string[] },
): Promise<{ hostName: string; storePath: string }[]> {
  const paths = new Map<string, string>(Object.entries(selection.manifest));
  for (const target of selection.targets) paths.set(target.hostName, target.storePath);
  let names = [...paths.keys()];
  if (selection.hostNames.length > 0 || selection.tags.length > 0) {
    const tagged =
      selection.tags.length === 0
        ? []
        : (await connection.call(connection.client.listHosts, { names: [] })).hosts
            .filter((host) => host.tags.some((tag) => selection.tags.includes(tag)))
            .map((host) => host.name);
    names = [...new Set([...selection.hostNames, ...tagged])].filter((name) => paths.has(name));
  }
  return names.sort().map((hostName) => ({ hostName, storePath: paths.get(hostName) as string }));
}

/** `rollout start --wait`: 0 every host confirmed, 3 done but some skipped, 1 aborted or some failed. */
function exitStatus(rollout: Rollout): number {
  if (rollout.outcome === "all-confirmed") return 0;
  if (rollout.outcome === "some-skipped") return EXIT_NOT_EVERY_HOST;
  return 1;
}

/** Polls the rollout and redraws its view until it ends; polling survives controller restarts. */
async function follow(connection: OperatorConnection, id: string, timeoutMs: number, out: Output): Promise<Rollout> {
  const deadline = Date.now() + timeoutMs;
  const live = process.stderr.isTTY && !out.json;
  let shown = "";
  let lines = 0;
  for (;;) {
    let rollout: Rollout | undefined;
    try {
      rollout = (await connection.call(connection.client.getRollout, { id })).rollout;
    } catch (error) {
      if (!(error instanceof FerryError) || error.code !== "E_CONTROLLER_UNREACHABLE") throw error;
      out.note("controller unreachable; still waiting");
    }
    if (rollout) {
      const view = renderRollout(rollout);
      if (view !== shown) {
        if (live && lines > 0) process.stderr.write(`\x1b[${lines}A\x1b[J`);
        if (!out.json) process.stderr.write(view);
        shown = view;
        lines = view.split("\n").length - 1;
      }
      if (isFinished(rollout)) return rollout;
    }
    if (Date.now() > deadline)
      throw new FerryError("E_DEPLOY_TIMEOUT", `rollout ${id} still ${rollout?.state ?? "unknown"} after ${timeoutMs / 1000}s; it goes on without you`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

export function rolloutJson(rollout: Rollout): Record<string, unknown> {
  const skipped = rollout.hosts
    .filter((host) => host.state === "skipped")
    .map((host) => ({ host: host.name, code: host.errorCode, reason: host.errorMessage }));
  return { ...rollout, mode: formatMode(rollout.mode), counts: rolloutCounts(rollout), skipped };
}

async function rolloutStatus(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, CONNECTION_OPTIONS);
  if (positionals.length !== 1) throw new FerryError("E_BAD_ARGUMENT", "usage: ferry rollout status ID");
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    const { rollout } = await connection.call(connection.client.getRollout, { id: positionals[0] as string });
    if (!rollout) throw new FerryError("E_UNKNOWN_ROLLOUT", "no such rollout");
    out.result({ rollout: rolloutJson(rollout) }, () => {
      const hosts = table(
        ["HOST", "WAVE", "STATE", "ERROR"],
        rollout.hosts.map((host) => [host.name, String(host.wave), host.state, host.errorCode ? `${host.errorCode}: ${host.errorMessage.slice(0, 80)}` : "-"]),
      );
      const policy = rollout.policy;
      const knobs = policy
        ? `canary ${formatQuantity(policy.canary)}, batch ${formatQuantity(policy.batch)}, max-unavailable ${policy.maxUnavailable}, failure-threshold ${formatQuantity(policy.failureThreshold)}${policy.gate ? ", gated" : ""}, mode ${formatMode(rollout.mode)}`
        : "";
      return `${renderRollout(rollout)}  started by ${rollout.requestedBy} at ${new Date(rollout.createdAtMs).toISOString()}; ${knobs}\n\n${hosts}`;
    });
    return 0;
  });
}

async function rolloutList(args: string[]): Promise<number> {
  const { values } = parse(args, { ...CONNECTION_OPTIONS, limit: { type: "string" } }, false);
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    const { rollouts } = await connection.call(connection.client.listRollouts, { limit: parseCount(values.limit, "--limit", 50) });
    out.result({ rollouts: rollouts.map(rolloutJson) }, () =>
      table(
        ["ID", "STATE", "ENV", "HOSTS", "WAVE", "BY", "STARTED"],
        rollouts.map((r) => [
          r.id,
          r.state,
          r.environment || "-",
          String(r.hosts.length),
          `${r.currentWave}/${r.waveCount}`,
          r.requestedBy,
          new Date(r.createdAtMs).toISOString(),
        ]),
      ),
    );
    return 0;
  });
}

const ACTIONS = {
  pause: RolloutAction.ROLLOUT_ACTION_PAUSE,
  resume: RolloutAction.ROLLOUT_ACTION_RESUME,
  abort: RolloutAction.ROLLOUT_ACTION_ABORT,
  promote: RolloutAction.ROLLOUT_ACTION_PROMOTE,
} as const;

async function rolloutControl(verb: keyof typeof ACTIONS, args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...CONNECTION_OPTIONS, reason: { type: "string", default: "" } });
  if (positionals.length !== 1) throw new FerryError("E_BAD_ARGUMENT", `usage: ferry rollout ${verb} ID`);
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    const { rollout } = await connection.call(connection.client.controlRollout, { id: positionals[0] as string, action: ACTIONS[verb], reason: values.reason });
    if (!rollout) throw new FerryError("E_INTERNAL", "the controller returned no rollout");
    out.result({ rollout: rolloutJson(rollout) }, () => renderRollout(rollout));
    return 0;
  });
}
