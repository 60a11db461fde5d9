import type { IncomingMessage, ServerResponse } from "node:http";
import { admitHttp, type HttpCaller } from "../auth/credentials.js";
import { HTTP_REQUIREMENTS } from "../auth/endpoint-scopes.js";
import { METRICS_CONTENT_TYPE, type ControllerMetrics } from "./registry.js";

export const METRICS_PATH = "/metrics";
const METHODS = new Set(["GET", "HEAD", "PUT", "POST", "DELETE"]);

/**
 * The route label of a request path: a handful of fixed names, never the path
 * itself (a store hash or a probe's random URL would each make a new series).
 */
export function routeOf(path: string): string {
  if (path.startsWith("/cache/")) {
    const relative = path.slice("/cache/".length);
    if (relative === "nix-cache-info") return "cache-info";
    if (relative.endsWith(".narinfo")) return "cache-narinfo";
    if (relative.startsWith("nar/")) return "cache-nar";
    return "cache-other";
  }
  if (path === "/bundles/upload") return "bundle-upload";
  if (path === "/healthz") return "healthz";
  if (path === METRICS_PATH) return "metrics";
  if (path === "/ui" || path.startsWith("/ui/")) return path === "/ui/events" ? "dashboard-events" : "dashboard";
  return "other";
}

/**
 * Records a request once its response is over (sent, or cut by the client):
 * its duration by method and route, and for the cache its status and the
 * bytes written to the socket meanwhile (headers included; one response at a
 * time per connection, as HTTP/1.1 answers in order).
 */
export function observeHttp(metrics: ControllerMetrics, request: IncomingMessage, response: ServerResponse): void {
  const started = process.hrtime.bigint();
  const socket = request.socket;
  const bytesBefore = socket.bytesWritten;
  response.once("close", () => {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const method = METHODS.has(request.method ?? "") ? (request.method as string) : "other";
    const route = routeOf((request.url ?? "/").split("?")[0] as string);
    metrics.httpRequest(method, route, seconds);
    const status = response.headersSent ? response.statusCode : 0;
    if (route.startsWith("cache-")) metrics.cacheResponse(method, status, socket.bytesWritten - bytesBefore);
    if (route === "bundle-upload" && method === "PUT") {
      metrics.bundleImport("upload", status >= 200 && status < 300 ? "imported" : status >= 500 || status === 0 ? "failed" : "refused");
    }
  });
}

/**
 * `GET /metrics`: the exposition text for a token with the `read` scope, or
 * for anyone when the controller runs with --metrics-public (a scraper on a
 * private network that holds no token).
 */
export async function serveMetrics(
  metrics: ControllerMetrics,
  request: IncomingMessage,
  response: ServerResponse,
  caller: HttpCaller,
  isPublic: boolean,
): Promise<void> {
  if (request.method !== "GET" && request.method !== "HEAD") {
    response.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end("metrics are read with GET\n");
    return;
  }
  if (!isPublic) {
    try {
      admitHttp(caller, HTTP_REQUIREMENTS["GET /metrics"]);
    } catch (error) {
      const code = (error as { code?: string }).code === "E_SCOPE" ? "E_SCOPE" : "E_AUTH";
      const status = code === "E_SCOPE" ? 403 : 401;
      response
        .writeHead(status, { "content-type": "text/plain", "www-authenticate": 'Bearer realm="ferry-metrics"' })
        .end(`${code}: /metrics needs a token with the read scope (authorization: Bearer …), or a controller started with --metrics-public\n`);
      return;
    }
  }
  const text = await metrics.text();
  response.writeHead(200, { "content-type": METRICS_CONTENT_TYPE, "content-length": Buffer.byteLength(text), "cache-control": "no-store" });
  response.end(request.method === "HEAD" ? undefined : text);
}
