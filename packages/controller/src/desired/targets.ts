import { randomBytes } from "node:crypto";
import { FerryError, assertHostName, assertStorePath, checkRelayedIntent, intentModeOfWire } from "@ferry/core";
import type { ActivationMode } from "@ferry/protocol";
import type { DeploymentTarget, StateStore } from "../store/state-store.js";

export function newId(prefix: string, nowMs: number): string {
  return `${prefix}-${nowMs.toString(36)}-${randomBytes(3).toString("hex")}`;
}

/** Good names and paths, each host once; returns the targets with canonical host names. Whether the hosts exist is validateTargets'. */
export function canonicalTargets<T extends Pick<DeploymentTarget, "hostName" | "storePath">>(given: readonly T[]): T[] {
  if (given.length === 0) throw new FerryError("E_BAD_ARGUMENT", "name at least one HOST=STOREPATH");
  const seen = new Set<string>();
  return given.map((target) => {
    const hostName = assertHostName(target.hostName);
    if (seen.has(hostName)) throw new FerryError("E_BAD_ARGUMENT", `host ${hostName} named twice`);
    seen.add(hostName);
    return { ...target, hostName, storePath: assertStorePath(target.storePath) };
  });
}

/** canonicalTargets, and every host known. */
export async function validateTargets<T extends Pick<DeploymentTarget, "hostName" | "storePath">>(store: StateStore, given: readonly T[]): Promise<T[]> {
  const targets = canonicalTargets(given);
  await store.listHosts(targets.map((target) => target.hostName));
  return targets;
}

/**
 * Refuses intents that cannot be for their target: another host, path or
 * mode, malformed, or not valid now. The controller holds no host's keys, so
 * the signature is the host's to check; this only spares an operator a
 * deployment every host would refuse.
 */
export function checkTargetIntents(targets: readonly DeploymentTarget[], mode: ActivationMode, nowMs: number): void {
  for (const target of targets) {
    if (target.intent) checkRelayedIntent(target.intent, { hostName: target.hostName, storePath: target.storePath, mode: intentModeOfWire(mode) }, nowMs);
  }
}
