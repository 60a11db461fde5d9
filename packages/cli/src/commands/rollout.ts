import { hostname, userInfo } from "node:os";
import { FerryError, assertHostName, readTextFile } from "@ferry/core";
import { RolloutAction, type Rollout, type RolloutPolicy } from "@ferry/protocol";
import { parseVerb, positiveSeconds } from "../args.js";
import { VERBS } from "../spec/index.js";
import { withConnection, type OperatorConnection } from "../client.js";
import { createOutput, table, type Output } from "../output.js";
import { isFinished, renderRollout, rolloutCounts } from "../rollout-view.js";
import { formatQuantity, parseCount, parseDuration, parseQuantity } from "../units.js";
import { parseTarget } from "./deploy.js";

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
  const text = readTextFile(file, "manifest");
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new FerryError("E_BAD_ARGUMENT", `manifest ${file} is not valid JSON: ${(error as Error).message}`);
  }
  const hosts = (parsed as { hosts?: unknown } | null)?.hosts;
  if (typeof hosts !== "object" || hosts === null || Array.isArray(hosts))
    throw new FerryError("E_BAD_ARGUMENT", `${file} must look like {"hosts": {"HOST": "/nix/store/…"}}`);
  const entries = Object.entries(hosts as Record<string, unknown>);
  return Object.fromEntries(entries.map(([host, path]) => [assertHostName(host), parseTarget(`${host}=${String(path)}`).storePath]));
}

async function rolloutStart(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS["rollout start"], args);
  if (values.gate && values.pause) throw new FerryError("E_BAD_ARGUMENT", "--pause and --gate exclude each other");
  const policy: RolloutPolicy = {
    canary: values.canary ? parseQuantity(values.canary, "--canary") : undefined,
    batch: values.batch ? parseQuantity(values.batch, "--batch") : undefined,
    maxUnavailable: parseCount(values["max-unavailable"], "--max-unavailable"),
    failureThreshold: values["failure-threshold"] ? parseQuantity(values["failure-threshold"], "--failure-threshold") : undefined,
    minExecuted: parseCount(values["min-executed"], "--min-executed"),
    pauseMs: values.pause ? parseDuration(values.pause, "--pause") : 0,
    gate: values.gate,
    progressDeadlineMs: values["progress-deadline"] ? parseDuration(values["progress-deadline"], "--progress-deadline") : 0,
    rollbackOnAbort: values["rollback-on-abort"],
    prefetchTimeoutMs: values["prefetch-timeout"] ? parseDuration(values["prefetch-timeout"], "--prefetch-timeout") : 0,
    skipUnfetchable: values["skip-unfetchable"],
  };
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    const { rollout } = await connection.call(connection.client.startRollout, {
      targets: positionals.map(parseTarget),
      hostNames: values.hosts ? values.hosts.split(",").filter(Boolean).map(assertHostName) : [],
      tags: values.tag,
      manifest: values.manifest ? readManifest(values.manifest) : {},
      policy,
      environment: values.environment,
      afterEnvironment: values.after,
      requestedBy: `${userInfo().username}@${hostname()}`,
    });
    if (!rollout) throw new FerryError("E_INTERNAL", "the controller returned no rollout");
    out.note(`started rollout ${rollout.id}: ${rollout.hosts.length} host(s) in ${rollout.waveCount} wave(s)`);
    if (!values.wait) {
      out.result({ rollout: rolloutJson(rollout) }, () => renderRollout(rollout));
      return 0;
    }
    const final = await follow(connection, rollout.id, positiveSeconds(values.timeout, "--timeout") * 1000, out);
    out.result({ rollout: rolloutJson(final) }, () => "");
    return finishedCleanly(final) ? 0 : 1;
  });
}

function finishedCleanly(rollout: Rollout): boolean {
  return rollout.state === "completed" && rollout.hosts.every((host) => host.state === "confirmed" || host.state === "skipped");
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
  return { ...rollout, counts: rolloutCounts(rollout) };
}

async function rolloutStatus(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS["rollout status"], args);
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
        ? `canary ${formatQuantity(policy.canary)}, batch ${formatQuantity(policy.batch)}, max-unavailable ${policy.maxUnavailable}, failure-threshold ${formatQuantity(policy.failureThreshold)}${policy.gate ? ", gated" : ""}`
        : "";
      return `${renderRollout(rollout)}  started by ${rollout.requestedBy} at ${new Date(rollout.createdAtMs).toISOString()}; ${knobs}\n\n${hosts}`;
    });
    return 0;
  });
}

async function rolloutList(args: string[]): Promise<number> {
  const { values } = parseVerb(VERBS["rollout list"], args);
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    const { rollouts } = await connection.call(connection.client.listRollouts, { limit: parseCount(values.limit, "--limit") });
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
  const { values, positionals } = parseVerb(VERBS[`rollout ${verb}`], args);
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    const { rollout } = await connection.call(connection.client.controlRollout, { id: positionals[0] as string, action: ACTIONS[verb], reason: values.reason });
    if (!rollout) throw new FerryError("E_INTERNAL", "the controller returned no rollout");
    out.result({ rollout: rolloutJson(rollout) }, () => renderRollout(rollout));
    return 0;
  });
}
