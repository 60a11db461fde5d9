import type { EventEmitter } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { FerryError, assertHostName, hashToken, type Logger } from "@ferry/core";
import type { HostLogs } from "../hub/host-logs.js";
import type { LinkView } from "../api/host-status.js";
import type { AuditLog } from "../audit/audit-log.js";
import type { Authenticator } from "../auth/authenticate.js";
import { authorize, type Principal } from "../auth/authorize.js";
import { deployTarget } from "../auth/deploy-target.js";
import { HTTP_REQUIREMENTS } from "../auth/endpoint-scopes.js";
import { controlRollout, type RolloutControl } from "../rollouts/control-rollout.js";
import type { RolloutEngine } from "../rollouts/engine.js";
import type { RolloutRecord } from "../store/rollout-records.js";
import type { StateStore } from "../store/state-store.js";
import { LIVE_SCRIPT, STYLE_SHEET } from "./assets.js";
import { AUDIT_SHOWN, auditPage } from "./audit-page.js";
import { FLEET_PAGE_SIZE, fleetPage } from "./fleet-page.js";
import { HOST_EVENTS_SHOWN, hostPage } from "./host-page.js";
import { html, type SafeHtml } from "./html.js";
import { layout } from "./layout.js";
import { DEFAULT_LIVE_LIMITS, LiveUpdates, parseTopic, type LiveLimits } from "./live-updates.js";
import { LoginLimit } from "./login-limit.js";
import { loginPage } from "./login-page.js";
import { clearedSessionCookie, crossOrigin, readForm, redirect, sendHtml, sendText, SECURITY_HEADERS, sessionCookie } from "./respond.js";
import { ROLLOUTS_SHOWN, rolloutActions, rolloutPage, rolloutsPage } from "./rollout-pages.js";
import { signedIn, type SignedIn } from "./session-gate.js";
import { csrfMatches, DEFAULT_SESSION_LIMITS, SessionStore, type SessionLimits } from "./sessions.js";

export const DASHBOARD_PREFIX = "/ui";

export interface DashboardOptions {
  sessions: SessionLimits;
  live: LiveLimits;
  /** Login attempts per remote address per minute. */
  loginsPerMinute: number;
}

export const DEFAULT_DASHBOARD_OPTIONS: DashboardOptions = { sessions: DEFAULT_SESSION_LIMITS, live: DEFAULT_LIVE_LIMITS, loginsPerMinute: 10 };

export interface DashboardDeps {
  store: StateStore;
  engine: RolloutEngine;
  audit: AuditLog;
  authenticator: Authenticator;
  hostEvents: EventEmitter;
  rolloutEvents: EventEmitter;
  link: LinkView;
  /** The agents' forwarded lines (the newest are shown on a host's page). */
  hostLogs?: Pick<HostLogs, "lines">;
  log: Logger;
  /** A request with a live session no longer counts against the edge's budget for unauthenticated sockets. */
  trust(socket: Socket): void;
  /** Cookies only over https (the listener speaks TLS). */
  secureCookies: boolean;
  options?: Partial<DashboardOptions>;
  now?: () => number;
}

const ACTIONS: ReadonlySet<string> = new Set<RolloutControl>(["pause", "resume", "abort", "promote"]);
const ROLLOUT_ID = /^[A-Za-z0-9._-]{1,100}$/;
const ASSETS: Record<string, { type: string; body: string }> = {
  "/ui/assets/live.js": { type: "text/javascript; charset=utf-8", body: LIVE_SCRIPT },
  "/ui/assets/style.css": { type: "text/css; charset=utf-8", body: STYLE_SHEET },
};

/**
 * The web dashboard, under /ui on the agent and cache listener: server-rendered
 * pages of the fleet, its hosts, rollouts and the audit trail, for a browser
 * logged in with an operator token; live over Server-Sent Events; rollout
 * controls for tokens that may deploy to the rollout's hosts.
 */
export class Dashboard {
  readonly sessions: SessionStore;
  readonly live: LiveUpdates;
  private readonly logins: LoginLimit;
  private readonly now: () => number;

  constructor(private readonly deps: DashboardDeps) {
    const options = { ...DEFAULT_DASHBOARD_OPTIONS, ...deps.options };
    this.now = deps.now ?? Date.now;
    this.sessions = new SessionStore(options.sessions, this.now);
    this.live = new LiveUpdates(deps.hostEvents, deps.rolloutEvents, options.live, this.now);
    this.logins = new LoginLimit(options.loginsPerMinute, 60_000, 10_000, this.now);
  }

  async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "http://dashboard");
    const path = url.pathname;
    const method = request.method ?? "GET";
    const asset = ASSETS[path];
    if (asset) {
      response.writeHead(200, { ...SECURITY_HEADERS, "content-type": asset.type, "cache-control": "no-cache" }).end(asset.body);
      return;
    }
    if (path === "/ui") return redirect(response, "/ui/");
    if (path === "/ui/login") return method === "POST" ? this.login(request, response) : this.loginForm(request, response);
    const user = await signedIn(request, this.sessions, this.deps.authenticator);
    if (!user) {
      if (path === "/ui/events") return sendText(response, 401, "E_AUTH: log in at /ui/login\n");
      return redirect(response, "/ui/login");
    }
    this.deps.trust(request.socket);
    if (method === "POST") return this.post(request, response, path, user);
    if (method !== "GET" && method !== "HEAD")
      return sendText(response, 405, "pages are read with GET; actions are forms posted with POST\n", { allow: "GET, HEAD, POST" });
    if (path === "/ui/events") return this.events(request, response, url);
    if (path === "/ui/") return this.fleet(response, url, user);
    if (path === "/ui/rollouts")
      return this.page(response, user, "Rollouts", "rollouts", rolloutsPage(await this.deps.store.rollouts.listRollouts(ROLLOUTS_SHOWN), this.now()));
    if (path === "/ui/audit") return this.auditTrail(response, user);
    const host = /^\/ui\/hosts\/([^/]+)$/.exec(path);
    if (host) return this.host(response, decodeSegment(host[1] as string), user);
    const rollout = /^\/ui\/rollouts\/([^/]+)$/.exec(path);
    if (rollout) return this.rollout(response, decodeSegment(rollout[1] as string), user);
    return this.notFound(response, user, "No such page.");
  }

  private page(response: ServerResponse, user: SignedIn, title: string, live: string, content: SafeHtml, status = 200): void {
    sendHtml(response, status, layout({ title, live, session: user.session, canAudit: may(user.principal, "admin") }, content));
  }

  private notFound(response: ServerResponse, user: SignedIn, message: string): void {
    this.page(
      response,
      user,
      "Not found",
      "",
      html`<h1>Not found</h1>
        <p>${message}</p>`,
      404,
    );
  }

  private loginForm(request: IncomingMessage, response: ServerResponse): Promise<void> {
    return signedIn(request, this.sessions, this.deps.authenticator).then((user) =>
      user ? redirect(response, "/ui/") : sendHtml(response, 200, layout({ title: "Log in" }, loginPage(""))),
    );
  }

  private async login(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const address = request.socket.remoteAddress ?? "?";
    if (crossOrigin(request)) return sendText(response, 403, "E_AUTH: a login from another site's page\n");
    if (!this.logins.admit(address)) {
      this.deps.log.warn({ remote: address }, "dashboard login attempts limited");
      const page = layout({ title: "Log in" }, loginPage("Too many login attempts from this address; wait a minute."));
      return sendHtml(response, 429, page, { "retry-after": String(this.logins.retryAfterSeconds(address)) });
    }
    const form = await readForm(request);
    const secret = form?.get("token")?.trim() ?? "";
    if (!form || secret.length > 1024) return sendHtml(response, 400, layout({ title: "Log in" }, loginPage("Send the token from the form.")));
    try {
      const principal = await this.deps.authenticator.authenticate(secret);
      authorize(principal, "read");
      const session = this.sessions.create(hashToken(secret));
      this.deps.log.info({ token: principal.name, remote: address }, "dashboard login");
      redirect(response, "/ui/", { "set-cookie": sessionCookie(session.id, this.sessions.cookieMaxAgeSeconds, this.deps.secureCookies) });
    } catch (error) {
      if (!(error instanceof FerryError)) throw error;
      // The same words for an unknown, revoked or expired token: the page does not help guessing.
      const message = error.code === "E_SCOPE" ? "This token lacks the read scope." : "Unknown, revoked or expired token.";
      sendHtml(response, error.code === "E_SCOPE" ? 403 : 401, layout({ title: "Log in" }, loginPage(message)));
    }
  }

  private async post(request: IncomingMessage, response: ServerResponse, path: string, user: SignedIn): Promise<void> {
    const form = crossOrigin(request) ? undefined : await readForm(request);
    if (!form || !csrfMatches(user.session, form.get("csrf") ?? undefined)) {
      this.deps.log.warn({ token: user.principal.name, path }, "dashboard form refused: missing or wrong form token");
      return sendText(response, 403, "E_CSRF: the form token is missing or wrong; reload the page and try again\n");
    }
    if (path === "/ui/logout") {
      this.sessions.end(user.session.id);
      return redirect(response, "/ui/login", { "set-cookie": clearedSessionCookie(this.deps.secureCookies) });
    }
    const control = /^\/ui\/rollouts\/([^/]+)\/control$/.exec(path);
    if (!control) return this.notFound(response, user, "No such action.");
    const id = decodeSegment(control[1] as string);
    const action = form.get("action") ?? "";
    if (!ROLLOUT_ID.test(id) || !ACTIONS.has(action)) return sendText(response, 400, "E_BAD_ARGUMENT: unknown rollout or action\n");
    const page = `/ui/rollouts/${encodeURIComponent(id)}`;
    try {
      await controlRollout(this.deps, user.principal, id, action as RolloutControl, form.get("reason") ?? "", { via: "dashboard" });
      user.session.flash = `${action}: done.`;
    } catch (error) {
      if (!(error instanceof FerryError)) throw error;
      if (error.code === "E_SCOPE" || error.code === "E_UNKNOWN_ROLLOUT") {
        return this.page(
          response,
          user,
          "Refused",
          "",
          html`<h1>Refused</h1>
            <p>${error.code}: ${error.message}</p>
            <p><a href="${page}">Back</a></p>`,
          error.code === "E_SCOPE" ? 403 : 404,
        );
      }
      user.session.flash = `${action} refused: ${error.code}: ${error.message}`;
    }
    redirect(response, page);
  }

  private events(request: IncomingMessage, response: ServerResponse, url: URL): void {
    const topic = parseTopic(url.searchParams.get("topic") ?? "");
    if (!topic) return sendText(response, 400, "E_BAD_ARGUMENT: topic is fleet, rollouts, host:NAME or rollout:ID\n");
    if (!this.live.serve(request, response, topic)) sendText(response, 503, "E_BUSY: too many live pages open; retry shortly\n", { "retry-after": "10" });
  }

  private async fleet(response: ServerResponse, url: URL, user: SignedIn): Promise<void> {
    let after = url.searchParams.get("after") ?? "";
    try {
      if (after !== "") after = assertHostName(after);
    } catch {
      return this.notFound(response, user, "No such page of hosts.");
    }
    const hosts = await this.deps.store.listHostsAfter(after, FLEET_PAGE_SIZE + 1);
    const shown = hosts.slice(0, FLEET_PAGE_SIZE);
    const next = hosts.length > FLEET_PAGE_SIZE ? (shown.at(-1)?.name ?? "") : "";
    this.page(response, user, "Fleet", "fleet", fleetPage({ hosts: shown, after, next, link: this.deps.link, nowMs: this.now() }));
  }

  private async host(response: ServerResponse, name: string, user: SignedIn): Promise<void> {
    let canonical: string;
    try {
      canonical = assertHostName(name);
    } catch {
      return this.notFound(response, user, "No such host.");
    }
    const record = await this.deps.store.getHost(canonical);
    if (!record) return this.notFound(response, user, `No host ${canonical}.`);
    const events = await this.deps.store.listEvents(canonical, HOST_EVENTS_SHOWN);
    this.page(
      response,
      user,
      record.name,
      `host:${record.name}`,
      hostPage(record, events, this.deps.link, this.now(), this.deps.hostLogs?.lines(record.name) ?? []),
    );
  }

  private async rollout(response: ServerResponse, id: string, user: SignedIn): Promise<void> {
    let record: RolloutRecord;
    try {
      if (!ROLLOUT_ID.test(id)) throw new FerryError("E_UNKNOWN_ROLLOUT", "bad rollout id");
      record = await this.deps.store.rollouts.getRollout(id);
    } catch (error) {
      if (error instanceof FerryError && error.code === "E_UNKNOWN_ROLLOUT") return this.notFound(response, user, "No such rollout.");
      throw error;
    }
    // The controls show only to a token that could use them: deploy, for every host of the rollout and its environment.
    const target = await deployTarget(
      this.deps.store,
      record.hosts.map((host) => host.name),
      record.environment,
    );
    const controls = may(user.principal, "deploy", target) ? rolloutActions(record, user.session.csrf) : html``;
    this.page(response, user, `Rollout ${record.id}`, `rollout:${record.id}`, html`${controls}${rolloutPage(record, this.now())}`);
  }

  private async auditTrail(response: ServerResponse, user: SignedIn): Promise<void> {
    // The audit trail is what ferry audit shows, and needs what it needs.
    if (!may(user.principal, HTTP_REQUIREMENTS["GET /ui/audit"])) {
      return this.page(
        response,
        user,
        "Audit",
        "",
        html`<h1>Audit</h1>
          <p>The audit trail needs a token with the admin scope.</p>`,
        403,
      );
    }
    this.page(response, user, "Audit", "", auditPage(await this.deps.store.audit.list(AUDIT_SHOWN)));
  }
}

function may(principal: Principal, required: Parameters<typeof authorize>[1], target?: Parameters<typeof authorize>[2]): boolean {
  try {
    authorize(principal, required, target);
    return true;
  } catch {
    return false;
  }
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return "";
  }
}
