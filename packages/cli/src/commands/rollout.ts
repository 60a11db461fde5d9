import { hostname, userInfo } from "node:os";
import { FerryError, assertHostName, canonicalHostMap, formatMode, modeToWire, parseOptionalMode, readTextFile } from "@ferry/core";
import { RolloutAction, type Rollout, type SignedIntent } from "@ferry/protocol";
import { parseVerb, positiveSeconds } from "../args.js";
import { VERBS } from "../spec/index.js";
import { INTENT_EXPIRY, intentExpiryMs, intentKey, readIntentsFile, signTargets } from "../intents.js";
import { withConnection, type OperatorConnection } from "../client.js";
import { EXIT_NOT_EVERY_HOST, createOutput, table, type Output } from "../output.js";
import { countHosts, finishedCleanly } from "../rollout-states.js";
import { parseRolloutPolicy } from "../rollout-policy-flags.js";
import { renderRollout } from "../rollout-view.js";
import { canDrawLive, watchRollout } from "../rollout-watch.js";
import { formatQuantity, parseCount } from "../units.js";
import { parseTarget } from "./deploy.js";
import { hostFilter, listAllHosts } from "../host-pages.js";

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
  return Object.fromEntries(canonicalHostMap(entries.map(([host, path]) => [host, parseTarget(`${host}=${String(path)}`).storePath])));
}

async function rolloutStart(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS["rollout start"], args);
  const mode = parseOptionalMode(values.mode);
  const key = intentKey(values);
  const policy = parseRolloutPolicy(values);
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
    const watchAgain = watchCommand(rollout.id, values);
    out.note(`started rollout ${rollout.id}: ${rollout.hosts.length} host(s) in ${rollout.waveCount} wave(s)`);
    if (!values.wait) {
      out.note(`watch it with: ${watchAgain}`);
      out.result({ rollout: rolloutJson(rollout) }, () => staticView(rollout));
      return 0;
    }
    return follow(connection, rollout.id, watchAgain, positiveSeconds(values.timeout, "--timeout") * 1000, out);
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
        : (await listAllHosts(connection, hostFilter([], [], [])))
            .filter((host) => host.tags.some((tag) => selection.tags.includes(tag)))
            .map((host) => host.name);
    names = [...new Set([...selection.hostNames, ...tagged])].filter((name) => paths.has(name));
  }
  return names.sort().map((hostName) => ({ hostName, storePath: paths.get(hostName) as string }));
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
  const { values, positionals } = parseVerb(VERBS["rollout status"], args);
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    if (values.wait) {
      const id = positionals[0] as string;
      return follow(connection, id, watchCommand(id, values), positiveSeconds(values.timeout, "--timeout") * 1000, out);
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
    const { rollout } = await connection.call(connection.client.controlRollout, {
      id: positionals[0] as string,
      action: ACTIONS[verb],
      reason: values.reason,
      acceptFailingChecks: "accept-failing-checks" in values && values["accept-failing-checks"] === true,
    });
    if (!rollout) throw new FerryError("E_INTERNAL", "the controller returned no rollout");
    out.result({ rollout: rolloutJson(rollout) }, () => staticView(rollout));
    return 0;
  });
}
