import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";

/**
 * The agent's HTTP client (health checks, substituter probes), on node:http:
 * the resident agent runs under V8's --lite-mode, which has no WebAssembly,
 * so undici (whose HTTP parser is WebAssembly) cannot run in it. node:http's
 * parser is native, and the process has it loaded already for its WebSocket.
 */
export interface HttpRequest {
  method: "GET" | "HEAD";
  headers?: Record<string, string>;
  /** PEM CA bundle for https:// instead of the system trust store. */
  ca?: Buffer;
  /** For the whole exchange: connecting, headers and body. */
  timeoutMs: number;
  /** Body bytes kept; the rest is read and dropped, so that a large answer costs no memory. */
  maxBodyBytes: number;
}

export interface HttpResponse {
  statusCode: number;
  body: string;
  /** The body was longer than maxBodyBytes and `body` holds its start. */
  truncated: boolean;
}

export function requestHttp(url: URL, options: HttpRequest): Promise<HttpResponse> {
  const send = url.protocol === "https:" ? httpsRequest : url.protocol === "http:" ? httpRequest : undefined;
  if (!send) return Promise.reject(new Error(`unsupported URL scheme ${url.protocol} (http: or https:)`));
  const signal = AbortSignal.timeout(options.timeoutMs);
  return new Promise((resolve, reject) => {
    const fail = (error: Error) => reject(signal.aborted ? new Error(`no complete answer within ${options.timeoutMs / 1000} s`, { cause: error }) : error);
    const req = send(url, { method: options.method, headers: options.headers, signal, ...(options.ca ? { ca: options.ca } : {}) }, (response) => {
      readBody(response, options.maxBodyBytes).then((read) => resolve({ statusCode: response.statusCode ?? 0, ...read }), fail);
    });
    req.on("error", fail);
    req.end();
  });
}

function readBody(response: IncomingMessage, maxBytes: number): Promise<{ body: string; truncated: boolean }> {
  const kept: Buffer[] = [];
  let size = 0;
  let truncated = false;
  return new Promise((resolve, reject) => {
    response.on("data", (chunk: Buffer) => {
      if (size < maxBytes) kept.push(chunk.subarray(0, maxBytes - size));
      truncated ||= size + chunk.length > maxBytes;
      size += chunk.length;
    });
    response.on("end", () => resolve({ body: Buffer.concat(kept).toString("utf8"), truncated }));
    response.on("error", reject);
    // A connection cut (or aborted by the timeout) in the middle of the body ends without "end".
    response.on("close", () => {
      if (!response.complete) reject(new Error("the connection closed before the whole answer arrived"));
    });
  });
}
