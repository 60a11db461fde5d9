import type { StateStore } from "../store/state-store.js";
import type { DeployTarget } from "./authorize.js";

/**
 * The hosts a deploy acts on, with the tags they carry now, for authorize().
 * A host no longer registered carries no tags, so a tag-limited token cannot
 * act on it.
 */
export async function deployTarget(store: StateStore, hostNames: Iterable<string>, environment?: string): Promise<DeployTarget> {
  const hosts = [];
  for (const name of new Set(hostNames)) hosts.push({ name, tags: (await store.getHost(name))?.tags ?? [] });
  return environment === undefined ? { hosts } : { hosts, environment };
}
