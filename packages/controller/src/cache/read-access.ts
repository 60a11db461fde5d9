import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { assertHostName, hashToken, tokenMatchesHash } from "@ferry/core";
import { requestCredentials } from "../edge/request-credentials.js";
import type { StateStore } from "../store/state-store.js";

/** Who may read a private cache: the operator, or a host with its own agent token. */
export type CacheReader = { kind: "operator" } | { kind: "host"; hostName: string };

/**
 * Authenticates a read of a private cache. A host signs in with HTTP Basic,
 * login = its name and password = its agent token (the netrc its agent
 * writes); the operator token works under any login. Bearer carries the
 * operator token only.
 */
export async function authenticateCacheReader(request: IncomingMessage, store: StateStore, adminTokenHash: string): Promise<CacheReader | undefined> {
  const credentials = requestCredentials(request);
  if (!credentials) return undefined;
  if (tokenMatchesHash(credentials.secret, adminTokenHash)) return { kind: "operator" };
  const login = credentials.login;
  if (login === undefined || !validHostName(login)) return undefined;
  const host = await store.getHost(login);
  // Same work for an unknown name as for a wrong token: names cannot be probed.
  const matches = tokenMatchesHash(credentials.secret, host?.tokenHash ?? NO_HOST_HASH);
  return host && matches ? { kind: "host", hostName: login } : undefined;
}

const NO_HOST_HASH = hashToken(randomBytes(32).toString("hex"));

function validHostName(name: string): boolean {
  try {
    assertHostName(name);
    return true;
  } catch {
    return false;
  }
}

/** nix-cache-info names no store path; Nix asks for it before it sends credentials anywhere else. */
export function isPublicCacheFile(relative: string): boolean {
  return relative === "nix-cache-info";
}
