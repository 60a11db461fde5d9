import { assertHostName } from "@ferry/core";
import type { StateStore } from "../store/state-store.js";
import type { DeployTarget } from "./authorize.js";

/**
 * The hosts a deploy acts on, with the tags they carry now, for authorize().
 * A host no longer registered carries no tags, so a tag-limited token cannot
 * act on it.
 */
export async function deployTarget(store: Pick<StateStore, "findHosts">, hostNames: Iterable<string>, environment?: string): Promise<DeployTarget> {
  const names = [...new Set(hostNames)];
  // One query for the whole selection: a 10,000-host deploy read its hosts one by one here.
  const tags = new Map((await store.findHosts(names)).map((record) => [record.name, record.tags]));
  const hosts = names.map((name) => ({ name, tags: tags.get(assertHostName(name)) ?? [] }));
  return environment === undefined ? { hosts } : { hosts, environment };
}
