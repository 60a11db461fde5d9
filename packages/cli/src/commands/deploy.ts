import { FerryError, assertHostName, assertStorePath, formatPhase, modeToWire, parseOptionalMode } from "@ferry/core";
import { HostPhase, type HostStatus, type HostTarget, type WatchHostsResponse, type WindowHold } from "@ferry/protocol";
import { parseVerb, positiveSeconds } from "../args.js";
import { VERBS } from "../spec/index.js";
import { INTENT_EXPIRY, deployFromIntents, intentExpiryMs, intentKey, readIntentsFile, signTargets } from "../intents.js";
import { status, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import { withConnection, toCliError, type OperatorConnection } from "../client.js";
import { EXIT_NOT_EVERY_HOST, createOutput, failingChecksNotes, hostStatusJson, type Output } from "../output.js";

export function parseTarget(argument: string): { hostName: string; storePath: string } {
  const eq = argument.indexOf("=");
  if (eq <= 0) throw new FerryError("E_BAD_ARGUMENT", `expected HOST=STOREPATH, got ${JSON.stringify(argument)}`);
  return { hostName: assertHostName(argument.slice(0, eq)), storePath: assertStorePath(argument.slice(eq + 1)) };
}

export async function deployCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS.deploy, args);
  if (positionals.length === 0 && values.intents === undefined)
    throw new FerryError("E_BAD_ARGUMENT", "name at least one HOST=STOREPATH, or give --intents FILE (ferry deploy --help)");
  const given = positionals.map(parseTarget);
  let mode = parseOptionalMode(values.mode);
  const key = intentKey(values);
  let targets: HostTarget[] = given.map((target) => ({ ...target, intent: undefined }));
  let signedBy = "";
  if (values.intents !== undefined) {
    const fromFile = deployFromIntents(readIntentsFile(values.intents), given, mode);
    targets = fromFile.targets;
    mode = fromFile.mode === "default" ? undefined : parseOptionalMode(fromFile.mode);
    signedBy = `intents from ${values.intents}`;
  } else if (key) {
    const signed = signTargets(given, mode ?? "default", key, intentExpiryMs(values, INTENT_EXPIRY.deploy));
    targets = given.map((target, i) => ({ ...target, intent: signed[i] }));
    signedBy = `intents signed by ${key.name}`;
  }
  const timeoutSeconds = positiveSeconds(values.timeout, "--timeout");
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    const response = await connection.call(connection.client.deploy, {
      targets,
      mode: modeToWire(mode),
      ignoreWindows: values["ignore-windows"],
      allowUnsigned: values["allow-unsigned"],
    });
    const { deploymentId, held, windowsIgnored } = response;
    out.note(`deployment ${deploymentId}: ${response.hosts.length} host(s), mode ${mode ?? "host default"}, ${signedBy || "unsigned"}`);
    const windowLines = [
      ...held.map(
        (hold) => `${hold.hostName}: fetches now, activates when its maintenance window opens (${opening(hold)}); --ignore-windows activates at once`,
      ),
      ...windowsIgnored.map((hold) => `${hold.hostName}: activates now, outside its maintenance window (--ignore-windows)`),
    ];
    for (const line of windowLines) out.note(`  ${line}`);
    const windowsJson = {
      signedIntents: targets.filter((target) => target.intent).length,
      held: held.map(holdJson),
      windowsIgnored: windowsIgnored.map(holdJson),
    };
    if (!values.wait) {
      out.result(
        { deploymentId, mode: mode ?? null, ...windowsJson, hosts: response.hosts.map(hostStatusJson) },
        () => `recorded deployment ${deploymentId}\n`,
      );
      return 0;
    }
    const final = [...(await waitForHosts(connection, deploymentId, new Set(response.hosts.map((host) => host.name)), timeoutSeconds * 1000, out)).values()];
    const failed = final.filter((host) => outcomeOf(host, deploymentId) === "failed");
    const waiting = final.filter((host) => outcomeOf(host, deploymentId) === "held");
    out.result({ deploymentId, mode: mode ?? null, success: failed.length === 0, ...windowsJson, hosts: final.map(hostStatusJson) }, () =>
      [
        ...final.map((host) =>
          outcomeOf(host, deploymentId) === "held"
            ? `${host.name}: fetched; activates when its maintenance window opens`
            : `${host.name}: ${formatPhase(host.phase)}${host.lastErrorCode ? ` (${host.lastErrorCode}: ${host.lastErrorMessage})` : ""}`,
        ),
        ...failingChecksNotes(final).map((note) => `warning: ${note}`),
      ].join("\n"),
    );
    if (failed.length > 0) {
      const first = failed[0] as HostStatus;
      const reason = first.deploymentId !== deploymentId ? "a newer deployment superseded this one" : `${first.lastErrorCode}: ${first.lastErrorMessage}`;
      throw new FerryError("E_DEPLOY_FAILED", `${failed.length} host(s) did not activate; ${first.name}: ${reason}`, { output: first.lastErrorOutput });
    }
    return waiting.length > 0 ? EXIT_NOT_EVERY_HOST : 0;
  });
}

function opening(hold: WindowHold): string {
  return hold.opensAtMs > 0 ? `next at ${new Date(hold.opensAtMs).toISOString()}` : "none opens within a week";
}

function holdJson(hold: WindowHold): { host: string; opensAt: string | null } {
  return { host: hold.hostName, opensAt: hold.opensAtMs > 0 ? new Date(hold.opensAtMs).toISOString() : null };
}

const SUCCESS_PHASES = new Set([HostPhase.HOST_PHASE_ACTIVE, HostPhase.HOST_PHASE_BOOT_PENDING]);
const FINAL_PHASES = new Set([...SUCCESS_PHASES, HostPhase.HOST_PHASE_FAILED, HostPhase.HOST_PHASE_ROLLED_BACK]);

/**
 * Where a host stands with respect to this deployment: "" while it works on
 * it; "held" once it fetched a system that waits for its maintenance window.
 * Hosts are followed by deployment, not serial: a held deployment's
 * activation is a new serial of the same deployment.
 */
function outcomeOf(host: HostStatus, deploymentId: string): "" | "done" | "held" | "failed" {
  if (host.deploymentId !== deploymentId) return "failed";
  if (host.appliedSerial < host.desiredSerial) return "";
  if (host.heldForWindow && host.phase === HostPhase.HOST_PHASE_FETCHED) return "held";
  if (!FINAL_PHASES.has(host.phase)) return "";
  return SUCCESS_PHASES.has(host.phase) ? "done" : "failed";
}

/**
 * Follows the hosts' status stream until each one settles on its serial, or
 * the timeout. A controller restart breaks the stream; it is opened again, so
 * waiting survives the controller going away for a while.
 */
function waitForHosts(
  connection: OperatorConnection,
  deploymentId: string,
  names: Set<string>,
  timeoutMs: number,
  out: Output,
): Promise<Map<string, HostStatus>> {
  return new Promise((resolve, reject) => {
    const latest = new Map<string, HostStatus>();
    const lastShown = new Map<string, string>();
    let stream: ClientReadableStream<WatchHostsResponse> | undefined;
    let finished = false;
    const finish = (error?: FerryError) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      stream?.cancel();
      if (error) reject(error);
      else resolve(latest);
    };
    const timer = setTimeout(() => {
      const waiting = [...names].filter((name) => !latest.has(name) || outcomeOf(latest.get(name) as HostStatus, deploymentId) === "");
      const detail = waiting.map(
        (name) =>
          `${name} (${latest.get(name) ? formatPhase((latest.get(name) as HostStatus).phase) : "unknown"}${latest.get(name)?.online ? "" : ", offline"})`,
      );
      finish(new FerryError("E_DEPLOY_TIMEOUT", `timed out after ${timeoutMs / 1000}s waiting for ${detail.join(", ")}`));
    }, timeoutMs);
    const watch = (): void => {
      const current = connection.client.watchHosts({ names: [...names] }, connection.metadata());
      stream = current;
      current.on("data", ({ host }: WatchHostsResponse) => {
        if (!host) return;
        latest.set(host.name, host);
        const shown = `${formatPhase(host.phase)}${host.heldForWindow ? " (waits for its window)" : ""}${host.online ? "" : " (offline)"}`;
        if (lastShown.get(host.name) !== shown) {
          lastShown.set(host.name, shown);
          out.note(`  ${host.name}: ${shown}`);
        }
        if ([...names].every((name) => latest.has(name) && outcomeOf(latest.get(name) as HostStatus, deploymentId) !== "")) finish();
      });
      current.on("error", (error: ServiceError) => {
        if (finished) return;
        const failure = toCliError(error);
        // A controller that shuts down cancels open streams: that, too, means "wait and reconnect".
        if (failure.code !== "E_CONTROLLER_UNREACHABLE" && error.code !== status.CANCELLED) return finish(failure);
        out.note("  controller unreachable; still waiting");
        setTimeout(() => {
          if (!finished) watch();
        }, 1000).unref();
      });
    };
    watch();
  });
}
