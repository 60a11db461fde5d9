import type { IncomingMessage } from "node:http";

export interface RequestCredentials {
  /** The Basic login; absent for a Bearer token. */
  login?: string;
  secret: string;
}

/** The credentials of HTTP Basic (what Nix sends from a netrc file) or a Bearer token. */
export function requestCredentials(request: IncomingMessage): RequestCredentials | undefined {
  const header = request.headers.authorization ?? "";
  if (header.startsWith("Bearer ")) return { secret: header.slice(7).trim() };
  if (!header.startsWith("Basic ")) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon < 0 ? undefined : { login: decoded.slice(0, colon), secret: decoded.slice(colon + 1) };
}
