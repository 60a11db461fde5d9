import type { IncomingMessage } from "node:http";
import { FerryError } from "@ferry/core";
import { authorize, type Principal, type Requirement } from "./authorize.js";
import type { Authenticator } from "./authenticate.js";

/** The secret of `authorization: Bearer …` gRPC metadata; "" when absent. */
export function bearerFromMetadata(metadata: { get(key: string): unknown[] }): string {
  const header = String(metadata.get("authorization")[0] ?? "");
  return header.startsWith("Bearer ") ? header.slice("Bearer ".length).trim() : "";
}

/** The secret of an HTTP request: Basic (what `nix copy` sends from a netrc; the password) or Bearer; "" when absent. */
export function secretFromHttp(request: IncomingMessage): string {
  const header = request.headers.authorization ?? "";
  if (header.startsWith("Bearer ")) return header.slice(7).trim();
  if (header.startsWith("Basic ")) {
    const decoded = Buffer.from(header.slice(6).trim(), "base64").toString("utf8");
    return decoded.includes(":") ? decoded.slice(decoded.indexOf(":") + 1) : "";
  }
  return "";
}

/** Authenticates a gRPC call and checks its method's requirement. */
export async function admitCall(authenticator: Authenticator, metadata: { get(key: string): unknown[] }, required: Requirement): Promise<Principal> {
  const principal = await authenticator.authenticate(bearerFromMetadata(metadata));
  authorize(principal, required);
  return principal;
}

/** Who an HTTP request comes from, found once per request: the token, or why it was refused. */
export type HttpCaller = { principal: Principal } | { refusal: FerryError };

/**
 * Most HTTP requests (substituters fetching narinfos and NARs) carry no token:
 * one refusal serves them all, since building an error per request cost more
 * than answering a narinfo from memory.
 */
const NO_TOKEN: HttpCaller = { refusal: new FerryError("E_AUTH", "missing operator token") };

export async function identifyHttpCaller(authenticator: Authenticator, request: IncomingMessage): Promise<HttpCaller> {
  const secret = secretFromHttp(request);
  if (secret === "") return NO_TOKEN;
  try {
    return { principal: await authenticator.authenticate(secret) };
  } catch (error) {
    if (error instanceof FerryError) return { refusal: error };
    throw error;
  }
}

/** The caller, if it may do what the endpoint requires; otherwise throws E_AUTH or E_SCOPE. */
export function admitHttp(caller: HttpCaller, required: Requirement): Principal {
  if ("refusal" in caller) throw caller.refusal;
  authorize(caller.principal, required);
  return caller.principal;
}
