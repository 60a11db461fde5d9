import { EventEmitter } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { Server as GrpcServer, ServerCredentials } from "@grpc/grpc-js";
import { FERRY_VERSION, tokenMatchesHash, type Logger } from "@ferry/core";
import { OperatorServiceService, PROTOCOL_VERSION, SiteServiceService } from "@ferry/protocol";
import { createOperatorService } from "./api/operator-service.js";
import { createRolloutHandlers } from "./api/rollout-service.js";
import { createCacheHandlers } from "./api/cache-service.js";
import { BUNDLE_UPLOAD_PATH, handleBundleUpload, removeStaleStaging } from "./api/bundle-upload.js";
import { createBundleSite, createSiteService } from "./api/site-service.js";
import { RolloutEngine } from "./rollouts/engine.js";
import { BinaryCache } from "./cache/binary-cache.js";
import { openDataDir, type DataDir } from "./data-dir.js";
import { AgentHub } from "./hub/agent-hub.js";
import { ConnectionGovernor, DEFAULT_EDGE_LIMITS, type EdgeLimits } from "./edge/connection-governor.js";
import { refuseUpload } from "./edge/refuse-upload.js";
import { SqliteStateStore } from "./store/sqlite-store.js";
import { DEFAULT_HISTORY_RETENTION, type HistoryRetention, type StateStore } from "./store/state-store.js";
import type { FrameRate } from "./hub/agent-limits.js";

export interface ControllerOptions {
  dataDir: string;
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
  log: Logger;
}

export interface RunningController {
  dataDir: DataDir;
  httpPort: number;
  grpcPort: number;
  store: StateStore;
  stop(): Promise<void>;
}

const AGENT_PATH = "/agent";
const HISTORY_PRUNE_INTERVAL_MS = 3_600_000;
const CACHE_PREFIX = "/cache/";

/** Reads the operator token from HTTP Basic (what `nix copy` sends from a netrc) or Bearer. */
function requestCarriesToken(request: IncomingMessage, tokenHash: string): boolean {
  const header = request.headers.authorization ?? "";
  if (header.startsWith("Bearer ")) return tokenMatchesHash(header.slice(7).trim(), tokenHash);
  if (header.startsWith("Basic ")) {
    const decoded = Buffer.from(header.slice(6).trim(), "base64").toString("utf8");
    const password = decoded.slice(decoded.indexOf(":") + 1);
    return decoded.includes(":") && tokenMatchesHash(password, tokenHash);
  }
  return false;
}

/**
 * Starts every part, or none: a start that fails at any step (a port in use, a
 * database it cannot migrate) closes what it opened and lets go of the data
 * directory, removing it if this start created it.
 */
export async function startController(options: ControllerOptions): Promise<RunningController> {
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
  const history = { ...DEFAULT_HISTORY_RETENTION, ...options.history };
  const store = new SqliteStateStore(dataDir.databaseFile, history);
  undo.push(() => store.close());
  const hostEvents = new EventEmitter();
  hostEvents.setMaxListeners(0);
  const cache = new BinaryCache(dataDir.cacheDir, (request) => requestCarriesToken(request, dataDir.adminTokenHash), log.child({ part: "cache" }));
  const rolloutEvents = new EventEmitter();
  rolloutEvents.setMaxListeners(0);
  const hub = new AgentHub({
    store,
    log: log.child({ part: "hub" }),
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? 10_000,
    ...(options.agentFrameRate ? { frameRate: options.agentFrameRate } : {}),
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
    engine,
    cache,
    log: log.child({ part: "site" }),
    adminTokenHash: dataDir.adminTokenHash,
    hostEvents,
    dataDir: dataDir.root,
  });

  const governor = new ConnectionGovernor({ ...DEFAULT_EDGE_LIMITS, ...options.edgeLimits }, log.child({ part: "edge" }));
  const http = createServer(governor.serverOptions(), (request: IncomingMessage, response: ServerResponse) => {
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
      void cache.handle(request, response, relative);
    } else if (path === BUNDLE_UPLOAD_PATH) {
      void handleBundleUpload(site, request, response, authorized);
    } else if (path === "/healthz") {
      response.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    } else {
      response.writeHead(404).end();
    }
  });
  governor.attach(http);
  http.on("upgrade", (request, socket: Socket, head) => {
    // An agent link is long-lived and proves itself alive with heartbeats; the hub times it out.
    socket.setTimeout(0);
    if ((request.url ?? "").split("?")[0] === AGENT_PATH) hub.handleUpgrade(request, socket, head, () => governor.trust(socket));
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    http.once("error", reject);
    http.listen(options.listen.port, options.listen.host, () => resolve());
  });
  undo.push(() => new Promise((resolve) => http.close(resolve)));
  const httpPort = (http.address() as AddressInfo).port;

  const grpc = new GrpcServer({ "grpc.max_receive_message_length": 4 * 1024 * 1024 });
  undo.push(() => grpc.forceShutdown());
  grpc.addService(OperatorServiceService, {
    ...createOperatorService({
      store,
      hub,
      cache,
      log: log.child({ part: "api" }),
      adminTokenHash: dataDir.adminTokenHash,
      hostEvents,
      info: { cachePath: CACHE_PREFIX.slice(0, -1), httpPort, publicUrl: options.publicUrl ?? "" },
    }),
    ...createRolloutHandlers({ store, cache, engine, log: log.child({ part: "api" }), adminTokenHash: dataDir.adminTokenHash, rolloutEvents }),
    ...createCacheHandlers({ store, cache, log: log.child({ part: "api" }), adminTokenHash: dataDir.adminTokenHash }),
  });
  grpc.addService(SiteServiceService, createSiteService(site.deps, site));
  const grpcPort = await new Promise<number>((resolve, reject) => {
    const host = options.grpcListen.host.includes(":") ? `[${options.grpcListen.host}]` : options.grpcListen.host;
    grpc.bindAsync(`${host}:${options.grpcListen.port}`, ServerCredentials.createInsecure(), (error, port) => (error ? reject(error) : resolve(port)));
  });

  engine.start();
  const pruneHistory = async (): Promise<void> => {
    const deleted = await store.pruneEvents(Date.now() - history.maxAgeMs);
    if (deleted > 0) log.info({ deleted, maxAgeDays: history.maxAgeMs / 86_400_000 }, "pruned old deployment history");
  };
  await pruneHistory();
  const pruneTimer = setInterval(
    () => void pruneHistory().catch((error: unknown) => log.warn({ err: String(error) }, "history prune failed")),
    HISTORY_PRUNE_INTERVAL_MS,
  );
  pruneTimer.unref();
  log.info({ version: FERRY_VERSION, protocolVersion: PROTOCOL_VERSION, httpPort, grpcPort, dataDir: dataDir.root }, "controller started");

  return {
    dataDir,
    httpPort,
    grpcPort,
    store,
    async stop() {
      clearInterval(pruneTimer);
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
      dataDir.release();
      log.info("controller stopped");
    },
  };
}
