import { EventEmitter } from "node:events";
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from "node:http";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { Server as GrpcServer, ServerCredentials } from "@grpc/grpc-js";
import { FERRY_VERSION, FerryError, type Logger } from "@ferry/core";
import { OperatorServiceService, PROTOCOL_VERSION, SiteServiceService } from "@ferry/protocol";
import { createOperatorService } from "./api/operator-service.js";
import { createRolloutHandlers } from "./api/rollout-service.js";
import { BUNDLE_UPLOAD_PATH, handleBundleUpload, removeStaleStaging } from "./api/bundle-upload.js";
import { createBundleSite, createSiteService } from "./api/site-service.js";
import { RolloutEngine } from "./rollouts/engine.js";
import { BinaryCache } from "./cache/binary-cache.js";
import { authenticateCacheReader, isPublicCacheFile } from "./cache/read-access.js";
import { openDataDir, type DataDir } from "./data-dir.js";
import { AgentHub } from "./hub/agent-hub.js";
import { ConnectionGovernor, DEFAULT_EDGE_LIMITS, type EdgeLimits } from "./edge/connection-governor.js";
import { refuseUpload } from "./edge/refuse-upload.js";
import { requestCarriesToken } from "./edge/request-credentials.js";
import { ControllerTls, type ControllerTlsFiles } from "./tls/controller-tls.js";
import { SqliteStateStore } from "./store/sqlite-store.js";
import type { StateStore } from "./store/state-store.js";

export interface ControllerOptions {
  dataDir: string;
  listen: { host: string; port: number };
  grpcListen: { host: string; port: number };
  /** URL agents and uploaders use to reach the listener, when it differs from --listen. */
  publicUrl?: string;
  heartbeatIntervalMs?: number;
  /** Connection and upload limits of the HTTP listener; unset fields keep their defaults. */
  edgeLimits?: Partial<EdgeLimits>;
  /** Serve https/wss and gRPC over TLS with these files; plaintext when absent. */
  tls?: ControllerTlsFiles;
  /** Cache reads need a host's or the operator's credentials (HTTP Basic); public when false. */
  privateCache?: boolean;
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
const CACHE_PREFIX = "/cache/";

export async function startController(options: ControllerOptions): Promise<RunningController> {
  const { log } = options;
  // Bad certificate files stop the start-up before anything listens.
  const tls = options.tls ? new ControllerTls(options.tls, log.child({ part: "tls" })) : undefined;
  const dataDir = openDataDir(options.dataDir);
  const store = new SqliteStateStore(dataDir.databaseFile);
  const hostEvents = new EventEmitter();
  hostEvents.setMaxListeners(0);
  const cache = new BinaryCache(dataDir.cacheDir, (request) => requestCarriesToken(request, dataDir.adminTokenHash), log.child({ part: "cache" }));
  const rolloutEvents = new EventEmitter();
  rolloutEvents.setMaxListeners(0);
  const hub = new AgentHub({
    store,
    log: log.child({ part: "hub" }),
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? 10_000,
    onHostChanged: (name) => {
      hostEvents.emit("changed", name);
      // A host's report may be the step a rollout waits for.
      engine.poke();
    },
  });
  const engine = new RolloutEngine({
    store,
    hub,
    log: log.child({ part: "rollouts" }),
    now: Date.now,
    onRolloutChanged: (id) => rolloutEvents.emit("changed", id),
    onHostChanged: (name) => hostEvents.emit("changed", name),
  });

  await removeStaleStaging(dataDir.cacheDir);
  const site = createBundleSite({
    store,
    hub,
    cache,
    log: log.child({ part: "site" }),
    adminTokenHash: dataDir.adminTokenHash,
    hostEvents,
    dataDir: dataDir.root,
  });

  const governor = new ConnectionGovernor({ ...DEFAULT_EDGE_LIMITS, ...options.edgeLimits }, log.child({ part: "edge" }));
  const handleRequest = (request: IncomingMessage, response: ServerResponse): void => {
    const path = (request.url ?? "/").split("?")[0] as string;
    const authorized = requestCarriesToken(request, dataDir.adminTokenHash);
    if (authorized) governor.trust(request.socket);
    const isUpload = request.method === "PUT" || request.method === "POST";
    if (isUpload && authorized) {
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
      if (options.privateCache && isRead && !isPublicCacheFile(relative)) void privateRead(request, response, relative);
      else void cache.handle(request, response, relative);
    } else if (path === BUNDLE_UPLOAD_PATH) {
      void handleBundleUpload(site, request, response, authorized);
    } else if (path === "/healthz") {
      response.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    } else {
      response.writeHead(404).end();
    }
  };
  const privateRead = async (request: IncomingMessage, response: ServerResponse, relative: string): Promise<void> => {
    let reader;
    try {
      reader = await authenticateCacheReader(request, store, dataDir.adminTokenHash);
    } catch (error) {
      log.error({ err: (error as Error).message }, "cache read authentication failed");
      response.writeHead(500, { "content-type": "text/plain" }).end("E_INTERNAL: cannot check credentials\n");
      return;
    }
    if (!reader) {
      response.writeHead(401, { "content-type": "text/plain", "www-authenticate": 'Basic realm="ferry-cache"' }).end("E_CACHE_AUTH: this cache is private\n");
      return;
    }
    governor.trust(request.socket);
    await cache.handle(request, response, relative);
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
    http.once("error", reject);
    http.listen(options.listen.port, options.listen.host, () => resolve());
  });
  const httpPort = (http.address() as AddressInfo).port;

  const grpc = new GrpcServer({ "grpc.max_receive_message_length": 4 * 1024 * 1024 });
  grpc.addService(OperatorServiceService, {
    ...createOperatorService({
      store,
      hub,
      cache,
      log: log.child({ part: "api" }),
      adminTokenHash: dataDir.adminTokenHash,
      hostEvents,
      info: { cachePath: CACHE_PREFIX.slice(0, -1), httpPort, publicUrl: options.publicUrl ?? "", tls: tls !== undefined },
    }),
    ...createRolloutHandlers({ store, cache, engine, log: log.child({ part: "api" }), adminTokenHash: dataDir.adminTokenHash, rolloutEvents }),
  });
  grpc.addService(SiteServiceService, createSiteService(site.deps, site));
  const grpcPort = await new Promise<number>((resolve, reject) => {
    const host = options.grpcListen.host.includes(":") ? `[${options.grpcListen.host}]` : options.grpcListen.host;
    const credentials = tls ? tls.grpcCredentials() : ServerCredentials.createInsecure();
    grpc.bindAsync(`${host}:${options.grpcListen.port}`, credentials, (error, port) => (error ? reject(error) : resolve(port)));
  });

  engine.start();
  log.info(
    {
      version: FERRY_VERSION,
      protocolVersion: PROTOCOL_VERSION,
      httpPort,
      grpcPort,
      dataDir: dataDir.root,
      tls: tls !== undefined,
      privateCache: Boolean(options.privateCache),
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
      await engine.stop();
      hub.close();
      // Watch streams never end on their own: give calls a moment, then cut them.
      const forced = setTimeout(() => grpc.forceShutdown(), 2000);
      await new Promise<void>((resolve) => grpc.tryShutdown(() => resolve()));
      clearTimeout(forced);
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      });
      governor.close();
      await store.close();
      log.info("controller stopped");
    },
  };
}
