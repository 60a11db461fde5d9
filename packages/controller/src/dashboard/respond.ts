import type { IncomingMessage, ServerResponse } from "node:http";
import type { SafeHtml } from "./html.js";

export const SESSION_COOKIE = "ferry_session";

/**
 * Every dashboard response carries these: scripts and styles only from the
 * controller itself (no inline script, nothing from elsewhere), never framed,
 * never cached (a page shows one token's view of the fleet).
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
  // Not no-referrer: with it browsers send "Origin: null" even on this site's own forms, which crossOrigin() refuses.
  "referrer-policy": "same-origin",
  "cache-control": "no-store",
};

export function sendHtml(response: ServerResponse, status: number, page: SafeHtml, headers: Record<string, string | string[]> = {}): void {
  const body = Buffer.from(`<!doctype html>\n${page.text}`);
  response.writeHead(status, { ...SECURITY_HEADERS, "content-type": "text/html; charset=utf-8", "content-length": body.length, ...headers });
  response.end(body);
}

/** 303: the browser follows with a GET, so a reload never re-posts a form. */
export function redirect(response: ServerResponse, location: string, headers: Record<string, string | string[]> = {}): void {
  response.writeHead(303, { ...SECURITY_HEADERS, location, "content-length": 0, ...headers });
  response.end();
}

export function sendText(response: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  response.writeHead(status, { ...SECURITY_HEADERS, "content-type": "text/plain; charset=utf-8", ...headers });
  response.end(text);
}

/** The value of one cookie, or undefined. */
export function cookieValue(request: IncomingMessage, name: string): string | undefined {
  const header = request.headers.cookie;
  if (!header || header.length > 8192) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export function sessionCookie(id: string, maxAgeSeconds: number, secure: boolean): string {
  return `${SESSION_COOKIE}=${id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${secure ? "; Secure" : ""}`;
}

export function clearedSessionCookie(secure: boolean): string {
  return `${SESSION_COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0${secure ? "; Secure" : ""}`;
}

const MAX_FORM_BYTES = 4096;

/**
 * The fields of an urlencoded form of at most 4 KiB; undefined for anything
 * else (another content type, a larger body, a body that stops arriving is
 * cut by the listener's idle timeout).
 */
export async function readForm(request: IncomingMessage): Promise<URLSearchParams | undefined> {
  const type = (request.headers["content-type"] ?? "").split(";")[0]?.trim();
  if (type !== "application/x-www-form-urlencoded") return undefined;
  const declared = Number(request.headers["content-length"] ?? 0);
  if (declared > MAX_FORM_BYTES) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_FORM_BYTES) return undefined;
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
}

/**
 * A POST from another site's page: browsers send Origin with every POST, and
 * it must name this listener. SameSite cookies and the form token already
 * refuse such requests; this is a third lock, and the only one on the login form.
 */
export function crossOrigin(request: IncomingMessage): boolean {
  const origin = request.headers.origin;
  if (origin === undefined) return false;
  try {
    return new URL(origin).host !== request.headers.host;
  } catch {
    return true;
  }
}
