import type { IncomingMessage, ServerResponse } from "node:http";

/** How much of a refused request's body is read before the socket is cut. */
const DRAIN_LIMIT_BYTES = 1024 * 1024;
const DRAIN_LIMIT_MS = 1000;

/**
 * Answers an upload that will not be stored. The client may still be sending
 * its body: reading a little of it lets the client see the answer instead of a
 * reset, but a refused client never gets to stream gigabytes into the void, so
 * the connection is closed after a bounded drain.
 */
export function refuseUpload(request: IncomingMessage, response: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  let drained = 0;
  const cut = (): void => {
    clearTimeout(timer);
    request.socket.destroy();
  };
  const timer = setTimeout(cut, DRAIN_LIMIT_MS);
  timer.unref();
  request.on("data", (chunk: Buffer) => {
    drained += chunk.length;
    if (drained > DRAIN_LIMIT_BYTES) cut();
  });
  request.on("end", () => clearTimeout(timer));
  response.writeHead(status, { "content-type": "text/plain", connection: "close", ...headers }).end(body, () => {
    if (request.complete) clearTimeout(timer);
  });
  response.once("close", () => {
    if (!request.complete) cut();
  });
}
