import { readFileSync } from "node:fs";
import { hostname, userInfo } from "node:os";
import { FerryError, assertHostName, canonicalHostMap, formatMode, modeToWire, parseOptionalMode } from "@ferry/core";
import { RolloutAction, type Rollout } from "@ferry/protocol";
import { CONNECTION_OPTIONS, parse, positiveSeconds } from "../args.js";
import { withConnection, type OperatorConnection } from "../client.js";
import { EXIT_NOT_EVERY_HOST, createOutput, table, type Output } from "../output.js";
import { countHosts, finishedCleanly } from "../rollout-states.js";
import { ROLLOUT_POLICY_OPTIONS, parseRolloutPolicy } from "../rollout-policy-flags.js";
import { renderRollout } from "../rollout-view.js";
import { canDrawLive, watchRollout } from "../rollout-watch.js";
import { formatQuantity, parseCount } from "../units.js";
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
  return Object.fromEntries(canonicalHostMap(entries.map(([host, path]) => [host, parseTarget(`${host}=${String(path)}`).storePath])));
}

async function rolloutStart(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    ...CONNECTION_OPTIONS,
    manifest: { type: "string" },
    hosts: { type: "string" },
    tag: { type: "string", multiple: true, default: [] },
    environment: { type: "string", default: "" },
    after: { type: "string", default: "" },
    ...ROLLOUT_POLICY_OPTIONS,
    mode: { type: "string" },
    "allow-unsigned": { type: "boolean", default: false },
    wait: { type: "boolean", default: false },
    timeout: { type: "string" },
  });
  const mode = parseOptionalMode(values.mode);
  const policy = parseRolloutPolicy(values);
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
      mode: modeToWire(mode),
      allowUnsigned: values["allow-unsigned"],
    });
    if (!rollout) throw new FerryError("E_INTERNAL", "the controller returned no rollout");
    const watchAgain = watchCommand(rollout.id, values);
    out.note(`started rollout ${rollout.id}: ${rollout.hosts.length} host(s) in ${rollout.waveCount} wave(s)`);
    if (!values.wait) {
      out.note(`watch it with: ${watchAgain}`);
      out.result({ rollout: rolloutJson(rollout) }, () => staticView(rollout));
      return 0;
    }
    return follow(connection, rollout.id, watchAgain, positiveSeconds(values.timeout, "--timeout", 3600) * 1000, out);
  });
}

/** `--wait`'s exit status: 0 every host confirmed, 3 done but some skipped, 1 aborted or some failed. */
function exitStatus(rollout: Rollout): number {
  // A controller older than the outcome field: every host confirmed or skipped is success.
  if (rollout.outcome === "") return finishedCleanly(rollout) ? 0 : 1;
  if (rollout.outcome === "all-confirmed") return 0;
  if (rollout.outcome === "some-skipped") return EXIT_NOT_EVERY_HOST;
  return 1;
}

/** Watches until the rollout finishes; exits as exitStatus says, 130 on Ctrl-C. */
async function follow(connection: OperatorConnection, id: string, watchAgain: string, timeoutMs: number, out: Output): Promise<number> {
  const result = await watchRollout({
    id,
    fetch: async () => {
      const { rollout } = await connection.call(connection.client.getRollout, { id });
      if (!rollout) throw new FerryError("E_UNKNOWN_ROLLOUT", `no rollout ${id}`);
      return rollout;
    },
    stream: process.stderr,
    live: canDrawLive(process.stderr, out.json),
    timeoutMs,
    watchCommand: watchAgain,
  });
  if (result.outcome === "interrupted") {
    if (out.json) out.result({ rollout: result.rollout ? rolloutJson(result.rollout) : null, interrupted: true, watchCommand: watchAgain }, () => "");
    return 130;
  }
  out.result({ rollout: rolloutJson(result.rollout) }, () => "");
  return exitStatus(result.rollout);
}

/** `ferry rollout status ID --wait`, with the connection flags this invocation was given, quoted for a shell. */
function watchCommand(id: string, flags: { controller?: string; "token-file"?: string }): string {
  const words = ["ferry", "rollout", "status", id, "--wait"];
  if (flags.controller) words.push("--controller", flags.controller);
  if (flags["token-file"]) words.push("--token-file", flags["token-file"]);
  return words.map((word) => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`)).join(" ");
}

/** The view printed once, for verbs that do not watch. */
function staticView(rollout: Rollout): string {
  const width = process.stdout.isTTY ? process.stdout.columns || 100 : 100;
  return `${renderRollout(rollout, { width, now: Date.now() }).join("\n")}\n`;
}

export function rolloutJson(rollout: Rollout): Record<string, unknown> {
  const counts = countHosts(rollout.hosts);
  const skipped = rollout.hosts
    .filter((host) => host.state === "skipped")
    .map((host) => ({ host: host.name, code: host.errorCode, reason: host.errorMessage }));
  return {
    ...rollout,
    mode: formatMode(rollout.mode),
    counts: { total: counts.total, done: counts.done, ...counts.byCategory, otherStates: counts.otherStates },
    skipped,
  };
}

async function rolloutStatus(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...CONNECTION_OPTIONS, wait: { type: "boolean", default: false }, timeout: { type: "string" } });
  if (positionals.length !== 1) throw new FerryError("E_BAD_ARGUMENT", "usage: ferry rollout status ID [--wait [--timeout S]]");
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    if (values.wait) {
      const id = positionals[0] as string;
      return follow(connection, id, watchCommand(id, values), positiveSeconds(values.timeout, "--timeout", 3600) * 1000, out);
    }
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
      return `${staticView(rollout)}  started by ${rollout.requestedBy} at ${new Date(rollout.createdAtMs).toISOString()}; ${knobs}\n\n${hosts}`;
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
  const { values, positionals } = parse(args, {
    ...CONNECTION_OPTIONS,
    reason: { type: "string", default: "" },
    "accept-failing-checks": { type: "boolean", default: false },
  });
  if (positionals.length !== 1) throw new FerryError("E_BAD_ARGUMENT", `usage: ferry rollout ${verb} ID`);
  if (values["accept-failing-checks"] && verb !== "resume") throw new FerryError("E_BAD_ARGUMENT", "--accept-failing-checks goes with rollout start or resume");
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    const { rollout } = await connection.call(connection.client.controlRollout, {
      id: positionals[0] as string,
      action: ACTIONS[verb],
      reason: values.reason,
      acceptFailingChecks: values["accept-failing-checks"],
    });
    if (!rollout) throw new FerryError("E_INTERNAL", "the controller returned no rollout");
    out.result({ rollout: rolloutJson(rollout) }, () => staticView(rollout));
    return 0;
  });
}
