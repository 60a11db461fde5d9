import type { IncomingMessage } from "node:http";
import { FerryError } from "@ferry/core";
import type { Authenticator } from "../auth/authenticate.js";
import { authorize, type Principal } from "../auth/authorize.js";
import { cookieValue, SESSION_COOKIE } from "./respond.js";
import type { Session, SessionStore } from "./sessions.js";

export interface SignedIn {
  session: Session;
  principal: Principal;
}

/**
 * The session a request's cookie names, with the token it logged in with as
 * that token stands now: a revoked or expired token, or one that lost the
 * read scope, ends the session at its next request.
 */
export async function signedIn(request: IncomingMessage, sessions: SessionStore, authenticator: Authenticator): Promise<SignedIn | undefined> {
  const id = cookieValue(request, SESSION_COOKIE);
  if (!id || id.length > 100) return undefined;
  const session = sessions.get(id);
  if (!session) return undefined;
  try {
    const principal = await authenticator.authenticateHash(session.tokenHash);
    authorize(principal, "read");
    return { session, principal };
  } catch (error) {
    if (!(error instanceof FerryError)) throw error;
    sessions.end(id);
    return undefined;
  }
}
