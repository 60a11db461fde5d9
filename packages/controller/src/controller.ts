import { EventEmitter } from "node:events";
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from "node:http";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { Server as GrpcServer, ServerCredentials } from "@grpc/grpc-js";
import { FERRY_VERSION, FerryError, listenError, toFerryError, type Logger } from "@ferry/core";
import { AccessServiceService, OperatorServiceService, PROTOCOL_VERSION, SiteServiceService } from "@ferry/protocol";
import { createOperatorService } from "./api/operator-service.js";
import { createAccessService } from "./api/access-service.js";
import { AuditLog } from "./audit/audit-log.js";
import { createAuthenticator } from "./auth/authenticate.js";
import { admitHttp, identifyHttpCaller } from "./auth/credentials.js";
import { HTTP_REQUIREMENTS } from "./auth/endpoint-scopes.js";
import { TokenAdmin } from "./auth/token-admin.js";
import { createRolloutHandlers } from "./api/rollout-service.js";
import { createCacheHandlers } from "./api/cache-service.js";
import { createHistoryHandlers } from "./api/history-service.js";
import { HostLogs, type HostLogLimits } from "./hub/host-logs.js";
import { BUNDLE_UPLOAD_PATH, handleBundleUpload, removeStaleStaging } from "./api/bundle-upload.js";
import { adoptLedgerFile, createBundleSite, createSiteService } from "./api/site-service.js";
import { RolloutEngine } from "./rollouts/engine.js";
import { rolloutOutcome } from "./rollouts/outcome.js";
import { DesiredState } from "./desired/desired-state.js";
import { openCache, type CacheOptions } from "./cache/open-cache.js";
import { DEFAULT_GC_KEEP_BUNDLES, DEFAULT_GC_MIN_AGE_MS, MAX_GC_PERIOD_MS, scheduleCacheGc, type CacheRetention } from "./cache/cache-retention.js";
import { authenticateCacheReader, isPublicCacheFile } from "./cache/read-access.js";
import { ControllerTls, type ControllerTlsFiles } from "./tls/controller-tls.js";
import { openDataDir, type DataDir } from "./data-dir.js";
import { AgentHub } from "./hub/agent-hub.js";
import { ConnectionGovernor, DEFAULT_EDGE_LIMITS, type EdgeLimits } from "./edge/connection-governor.js";
import { refuseUpload } from "./edge/refuse-upload.js";
import { openStateStore, redactDatabaseUrl } from "./store/open-store.js";
import { joinReplicas, openCoordination, shareCache } from "./replicas/join-replicas.js";
import { DEFAULT_HISTORY_RETENTION, type HistoryRetention, type StateStore } from "./store/state-store.js";
import type { FrameRate } from "./hub/agent-limits.js";
import { ControllerMetrics } from "./metrics/registry.js";
import { METRICS_PATH, observeHttp, serveMetrics } from "./metrics/http-metrics.js";
import { grpcMetricsInterceptor } from "./metrics/grpc-metrics.js";
import { Dashboard, DASHBOARD_PREFIX, type DashboardOptions } from "./dashboard/dashboard.js";

export interface ControllerOptions extends CacheOptions {
  dataDir: string;
  /** A PostgreSQL URL shared by replicas; absent: DATA_DIR/state.sqlite. */
  database?: string;
  listen: { host: string; port: number };
  grpcListen: { host: string; port: number };
  /** URL agents and uploaders use to reach the listener, when it differs from --listen. */
  publicUrl?: string;
  heartbeatIntervalMs?: number;
  /** Connection and upload limits of the HTTP listener; unset fields keep their defaults. */
  edgeLimits?: Partial<EdgeLimits>;
  /** Frames one agent connection may send; the default suits real agents. */
  agentFrameRate?: FrameRate;
  /** How long and how much deployment history is kept (default 30 days, 1000 events per host). */
  history?: Partial<HistoryRetention>;
  /** Bounds on the forwarded log lines held in memory for ferry logs. */
  hostLogLimits?: HostLogLimits;
  /** Serve https/wss and gRPC over TLS with these files; plaintext when absent. */
  tls?: ControllerTlsFiles;
  /** Cache reads need a host's or an operator's credentials (HTTP Basic); public when false. */
  privateCache?: boolean;
  /** Serve /metrics without a token (a scraper on a private network); by default it needs a read-scoped token. */
  metricsPublic?: boolean;
  /** Sessions, live streams and login limits of the web dashboard (/ui); unset fields keep their defaults. */
  dashboard?: Partial<DashboardOptions>;
  /** What cache garbage collection keeps (unset fields: 7 days, 3 bundles), and how often it runs on its own (never when unset). */
  cacheGc?: Partial<CacheRetention> & { everyMs?: number };
  log: Logger;
}

export interface RunningController {
  dataDir: DataDir;
  httpPort: number;
  grpcPort: number;
  store: StateStore;
  /** Whether both listeners speak TLS. */
  tls: boolean;
  /** Re-reads the TLS files for new connections (SIGHUP); throws E_TLS_MATERIAL and keeps the old ones on a bad file. */
  reloadTls(): void;
  stop(): Promise<void>;
}

const AGENT_PATH = "/agent";
const HISTORY_PRUNE_INTERVAL_MS = 3_600_000;
const CACHE_PREFIX = "/cache/";

/**
 * Starts every part, or none: a start that fails at any step (a port in use, a
 * database it cannot migrate) closes what it opened and lets go of the data
 * directory, removing it if this start created it.
 */
export async function startController(options: ControllerOptions): Promise<RunningController> {
  // Bad certificate files stop the start-up before anything is created or listens.
  if (options.tls) new ControllerTls(options.tls, options.log.child({ part: "tls" }));
  const every = options.cacheGc?.everyMs;
  if (every !== undefined && !(Number.isSafeInteger(every) && every >= 60_000 && every <= MAX_GC_PERIOD_MS)) {
    throw new FerryError("E_BAD_ARGUMENT", `the cache collection period must be from 1 minute to 24 days, got ${every} ms`);
  }
  const dataDir = openDataDir(options.dataDir);
  const undo: (() => unknown)[] = [];
  try {
    return await startParts(options, dataDir, undo);
  } catch (error) {
    for (const step of undo.reverse()) {
      try {
        await step();
      } catch {
        // Keep undoing: the start's own error is the one to report.
      }
    }
    dataDir.abandon();
    throw error;
  }
}

async function startParts(options: ControllerOptions, dataDir: DataDir, undo: (() => unknown)[]): Promise<RunningController> {
  const { log } = options;
  const tls = options.tls ? new ControllerTls(options.tls, log.child({ part: "tls" })) : undefined;
  const history = { ...DEFAULT_HISTORY_RETENTION, ...options.history };
  const store = await openStateStore(
    { database: options.database, sqliteFile: dataDir.databaseFile },
    { retention: history, onBackgroundError: (error) => log.warn({ err: error.message }, "database connection lost; queries reconnect") },
  );
  undo.push(() => store.close());
  // Replicas on one PostgreSQL database: one drives rollouts, each hears what the others commit.
  const coordination = await openCoordination(options.database, log.child({ part: "replicas" }));
  undo.push(() => coordination.close());
  const hostEvents = new EventEmitter();
  hostEvents.setMaxListeners(0);
  const authenticator = createAuthenticator(store.tokens, log.child({ part: "auth" }));
  const tokenAdmin = new TokenAdmin(store.tokens, dataDir.adminTokenFile);
  if (!(await tokenAdmin.adoptAdminFile(dataDir.adminTokenHash, options.database !== undefined))) {
    log.warn(
      { file: dataDir.adminTokenFile },
      "this replica's admin.token is not the admin token the shared database holds; copy the admin.token of the replica that started first into this data directory",
    );
  }
  const audit = new AuditLog(store.audit, log.child({ part: "audit" }));
  const {
    cache,
    closures,
    describe: cacheWhere,
  } = openCache(
    options,
    dataDir.cacheDir,
    (uploader, storePath) => audit.notePush(uploader, storePath),
    log.child({ part: "cache" }),
    coordination.replicated ? (hash) => coordination.announceCache(hash) : undefined,
  );
  shareCache(coordination, cache, log.child({ part: "cache" }));
  undo.push(() => cache.close());
  const rolloutEvents = new EventEmitter();
  rolloutEvents.setMaxListeners(0);
  // Fleet gauges are read at scrape time, from the store and from which agents the hub holds.
  const metrics = new ControllerMetrics({ fleet: { listHosts: () => store.listHostPhases(), isOnline: (name): boolean => hub.isOnline(name) } });
  // Forwarded agent log lines, in memory only (ferry logs).
  const hostLogs = new HostLogs(options.hostLogLimits);
  const hub = new AgentHub({
    logs: hostLogs,
    store,
    log: log.child({ part: "hub" }),
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? 10_000,
    ...(options.agentFrameRate ? { frameRate: options.agentFrameRate } : {}),
    onHostChanged: (name) => hostEvents.emit("changed", name),
    metrics,
  });
  const desired = new DesiredState({
    store,
    cache: closures,
    hub,
    log: log.child({ part: "desired" }),
    now: Date.now,
    onChanged: (names) => {
      for (const name of names) hostEvents.emit("changed", name);
    },
  });
  const engine = new RolloutEngine({
    store,
    desired,
    hub,
    log: log.child({ part: "rollouts" }),
    now: Date.now,
    onRolloutChanged: (id) => rolloutEvents.emit("changed", id),
    onRolloutFinished: (rollout) => {
      const outcome = rolloutOutcome(rollout);
      if (outcome !== "") metrics.rolloutFinished(outcome);
    },
    replicas: coordination.replicated ? coordination : undefined,
  });
  const feed = await joinReplicas({
    coordination,
    store,
    hub,
    engine,
    hostEvents,
    rolloutEvents,
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? 10_000,
    log: log.child({ part: "replicas" }),
  });
  undo.push(() => feed?.stop());
  // Every change to a host (a report, a deploy, a removal) is announced here; a rollout may wait for it.
  hostEvents.on("changed", (name: string) => engine.hostsChanged([name]));

  await removeStaleStaging(cache.dir);
  await adoptLedgerFile(dataDir.root, store.bundles, log.child({ part: "site" }));
  const site = createBundleSite({
    store,
    desired,
    hub,
    engine,
    cache,
    log: log.child({ part: "site" }),
    authenticator,
    audit,
    hostEvents,
    dataDir: dataDir.root,
  });

  const dashboard = new Dashboard({
    store,
    engine,
    audit,
    authenticator,
    hostEvents,
    rolloutEvents,
    link: hub,
    hostLogs,
    log: log.child({ part: "dashboard" }),
    trust: (socket) => governor.trust(socket),
    secureCookies: tls !== undefined,
    ...(options.dashboard ? { options: options.dashboard } : {}),
  });
  const governor = new ConnectionGovernor({ ...DEFAULT_EDGE_LIMITS, ...options.edgeLimits }, log.child({ part: "edge" }));
  const route = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const path = (request.url ?? "/").split("?")[0] as string;
    // Who it is, found once; each endpoint checks what it requires (auth/endpoint-scopes.ts).
    const caller = await identifyHttpCaller(authenticator, request);
    const authenticated = "principal" in caller;
    if (authenticated) governor.trust(request.socket);
    const isUpload = request.method === "PUT" || request.method === "POST";
    if (isUpload && authenticated) {
      if (!governor.beginUpload()) {
        refuseUpload(request, response, 503, "E_BUSY: too many uploads in progress; retry shortly\n", { "retry-after": "5" });
        return;
      }
      response.once("close", () => governor.endUpload());
    }
    if (path.startsWith(CACHE_PREFIX)) {
      let relative: string;
      try {
        relative = decodeURIComponent(path.slice(CACHE_PREFIX.length));
      } catch {
        response.writeHead(400, { "content-type": "text/plain" }).end("malformed URL encoding\n");
        return;
      }
      const isRead = request.method === "GET" || request.method === "HEAD";
      if (options.privateCache && isRead && !isPublicCacheFile(relative) && !authenticated) {
        // Not an operator token: a host's own name and agent token, or nothing.
        const reader = await authenticateCacheReader(request, store, dataDir.adminTokenHash);
        if (!reader) {
          response
            .writeHead(401, { "content-type": "text/plain", "www-authenticate": 'Basic realm="ferry-cache"' })
            .end("E_CACHE_AUTH: this cache is private\n");
          return;
        }
        governor.trust(request.socket);
      }
      await cache.handle(request, response, relative, () => admitHttp(caller, HTTP_REQUIREMENTS["PUT /cache/*"]).name);
    } else if (path === BUNDLE_UPLOAD_PATH) {
      await handleBundleUpload(site, request, response, () => admitHttp(caller, HTTP_REQUIREMENTS["PUT /bundles/upload"]));
    } else if (path === METRICS_PATH) {
      await serveMetrics(metrics, request, response, caller, options.metricsPublic === true);
    } else if (path === DASHBOARD_PREFIX || path.startsWith(`${DASHBOARD_PREFIX}/`)) {
      await dashboard.handle(request, response);
    } else if (path === "/healthz") {
      response.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    } else {
      response.writeHead(404).end();
    }
  };
  const handleRequest = (request: IncomingMessage, response: ServerResponse): void => {
    observeHttp(metrics, request, response);
    route(request, response).catch((error: unknown) => {
      const failure = toFerryError(error);
      log.error({ err: failure.message, code: failure.code, url: request.url }, "HTTP request failed");
      if (!response.headersSent) response.writeHead(500, { "content-type": "text/plain" });
      response.end(`${failure.code}: ${failure.message}\n`);
    });
  };
  let http: HttpServer | HttpsServer;
  if (tls) {
    const secure = createHttpsServer({ ...governor.serverOptions(), ...tls.httpsOptions() }, handleRequest);
    tls.attachHttps(secure);
    http = secure;
  } else {
    http = createServer(governor.serverOptions(), handleRequest);
  }
  governor.attach(http);
  http.on("upgrade", (request: IncomingMessage, socket: Socket, head: Buffer) => {
    // An agent link is long-lived and proves itself alive with heartbeats; the hub times it out.
    socket.setTimeout(0);
    if ((request.url ?? "").split("?")[0] !== AGENT_PATH) {
      socket.destroy();
    } else if (tls && !tls.agentCertificateAccepted(socket as TLSSocket)) {
      // Said in a header, because the agent cannot read a refused upgrade's body.
      socket.end("HTTP/1.1 403 Forbidden\r\nx-ferry-error-code: E_TLS_CLIENT_CERT\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
      log.warn({ remote: socket.remoteAddress }, "agent refused: no client certificate signed by --agent-client-ca");
    } else {
      hub.handleUpgrade(request, socket, head, () => governor.trust(socket));
    }
  });
  await new Promise<void>((resolve, reject) => {
    http.once("error", (error) => reject(listenError(error, options.listen, "the agent and cache listener, --listen")));
    http.listen(options.listen.port, options.listen.host, () => resolve());
  });
  undo.push(() => new Promise((resolve) => http.close(resolve)));
  const httpPort = (http.address() as AddressInfo).port;

  const retention: CacheRetention = {
    minAgeMs: options.cacheGc?.minAgeMs ?? DEFAULT_GC_MIN_AGE_MS,
    keepBundles: options.cacheGc?.keepBundles ?? DEFAULT_GC_KEEP_BUNDLES,
  };
  const cacheGcDeps = { store, cache, audit, authenticator, bundles: () => store.bundles.imports(), log: log.child({ part: "cache-gc" }) };
  const grpc = new GrpcServer({ "grpc.max_receive_message_length": 4 * 1024 * 1024, interceptors: [grpcMetricsInterceptor(metrics)] });
  undo.push(() => grpc.forceShutdown());
  grpc.addService(OperatorServiceService, {
    ...createOperatorService({
      store,
      desired,
      hub,
      cache,
      closures,
      log: log.child({ part: "api" }),
      authenticator,
      audit,
      hostEvents,
      info: { cachePath: CACHE_PREFIX.slice(0, -1), httpPort, publicUrl: options.publicUrl ?? "", tls: tls !== undefined },
    }),
    ...createRolloutHandlers({ store, closures, engine, log: log.child({ part: "api" }), authenticator, audit, rolloutEvents }),
    ...createCacheHandlers({ ...cacheGcDeps, log: log.child({ part: "api" }), retention }),
    ...createHistoryHandlers({
      store,
      desired,
      hub,
      logs: hostLogs,
      log: log.child({ part: "api" }),
      authenticator,
      audit,
      eventsPerHost: history.eventsPerHost,
    }),
  });
  grpc.addService(SiteServiceService, createSiteService(site.deps, site));
  grpc.addService(AccessServiceService, createAccessService({ store, hub, log: log.child({ part: "api" }), authenticator, audit, tokenAdmin }));
  const grpcPort = await new Promise<number>((resolve, reject) => {
    const host = options.grpcListen.host.includes(":") ? `[${options.grpcListen.host}]` : options.grpcListen.host;
    const credentials = tls ? tls.grpcCredentials() : ServerCredentials.createInsecure();
    grpc.bindAsync(`${host}:${options.grpcListen.port}`, credentials, (error, port) => (error ? reject(error) : resolve(port)));
  }).catch(async (error: unknown) => {
    // The HTTP listener is already open: left behind, it would keep a failed controller running.
    http.closeAllConnections();
    await new Promise<void>((resolve) => http.close(() => resolve()));
    await store.close();
    throw listenError(error, options.grpcListen, "the operator gRPC listener, --grpc-listen");
  });

  // Alone, this controller drives rollouts now; a replica does once it takes the leader lock (maybe later, when another dies).
  await coordination.lead({ gained: () => engine.start(), lost: () => engine.stop() });
  const pruneHistory = async (): Promise<void> => {
    const deleted = await store.pruneEvents(Date.now() - history.maxAgeMs);
    if (deleted > 0) log.info({ deleted, maxAgeDays: history.maxAgeMs / 86_400_000 }, "pruned old deployment history");
    // The audit trail is history too, kept as long.
    const audited = await store.audit.prune(Date.now() - history.maxAgeMs);
    if (audited > 0) log.info({ deleted: audited, maxAgeDays: history.maxAgeMs / 86_400_000 }, "pruned old audit entries");
    // A forwarded command is answered within about a minute; a day of them is plenty to look back on.
    await store.commands.prune(Date.now() - 86_400_000);
  };
  await pruneHistory();
  const pruneTimer = setInterval(
    () => void pruneHistory().catch((error: unknown) => log.warn({ err: String(error) }, "history prune failed")),
    HISTORY_PRUNE_INTERVAL_MS,
  );
  pruneTimer.unref();
  const stopCacheGc = options.cacheGc?.everyMs === undefined ? () => undefined : scheduleCacheGc(cacheGcDeps, retention, options.cacheGc.everyMs);
  log.info(
    {
      version: FERRY_VERSION,
      protocolVersion: PROTOCOL_VERSION,
      httpPort,
      grpcPort,
      dataDir: dataDir.root,
      database: options.database ? redactDatabaseUrl(options.database) : "sqlite",
      tls: tls !== undefined,
      privateCache: Boolean(options.privateCache),
      metricsPublic: Boolean(options.metricsPublic),
      cacheGcEveryMs: options.cacheGc?.everyMs ?? null,
      ...cacheWhere,
    },
    "controller started",
  );

  return {
    dataDir,
    httpPort,
    grpcPort,
    store,
    tls: tls !== undefined,
    reloadTls() {
      if (!tls) throw new FerryError("E_BAD_ARGUMENT", "this controller runs without TLS; nothing to reload");
      tls.reload();
    },
    async stop() {
      clearInterval(pruneTimer);
      stopCacheGc();
      await feed?.stop();
      await coordination.close();
      await engine.stop();
      await hub.close();
      // Watch streams never end on their own: give calls a moment, then cut them.
      const forced = setTimeout(() => grpc.forceShutdown(), 2000);
      await new Promise<void>((resolve) => grpc.tryShutdown(() => resolve()));
      clearTimeout(forced);
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      });
      governor.close();
      cache.close();
      await audit.flush();
      await store.close();
      dataDir.release();
      log.info("controller stopped");
    },
  };
}
