// The dashboard's Server-Sent Events on a real HTTP server with plain change
// emitters: changes are coalesced, other subjects are ignored, and a closed
// page leaves no listener and no timer behind.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { createServer, request, type ClientRequest, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { LiveUpdates, parseTopic } from "../src/dashboard/live-updates.js";
import { until } from "./fake-fleet.js";

const hostEvents = new EventEmitter();
const rolloutEvents = new EventEmitter();
const live = new LiveUpdates(hostEvents, rolloutEvents, { maxClients: 50, coalesceMs: 200, keepAliveMs: 60_000 });
let server: Server;
let port: number;

before(async () => {
  server = createServer((req, res) => {
    const topic = parseTopic(new URL(req.url ?? "/", "http://x").searchParams.get("topic") ?? "");
    if (!topic || !live.serve(req, res, topic)) res.writeHead(503).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));

interface Stream {
  request: ClientRequest;
  messages: () => number;
}

function open(topic: string): Promise<Stream> {
  return new Promise((resolve, reject) => {
    const req = request({ port, path: `/?topic=${encodeURIComponent(topic)}` }, (response: IncomingMessage) => {
      let text = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => (text += chunk));
      response.on("error", () => undefined);
      resolve({ request: req, messages: () => text.split("event: changed").length - 1 });
    });
    req.on("error", (error) => ((error as NodeJS.ErrnoException).code === "ECONNRESET" ? undefined : reject(error)));
    req.end();
  });
}

test("a burst of changes makes one message; another host's or rollout's changes make none", async () => {
  const host = await open("host:web1");
  const fleet = await open("fleet");
  const rollout = await open("rollout:r-1");
  for (let i = 0; i < 500; i++) hostEvents.emit("changed", i % 2 === 0 ? "web1" : "web2");
  await until("the fleet page's message", () => (fleet.messages() === 1 ? true : undefined));
  await until("the host page's message", () => (host.messages() === 1 ? true : undefined));
  rolloutEvents.emit("changed", "r-2");
  rolloutEvents.emit("changed", "r-1");
  await until("the rollout page's message", () => (rollout.messages() === 1 ? true : undefined));
  // A later change is a second message, not lost in the first one's window.
  hostEvents.emit("changed", "web1");
  await until("the second message", () => (host.messages() === 2 ? true : undefined));
  await until("the fleet page's second message", () => (fleet.messages() === 2 ? true : undefined));
  assert.equal(rollout.messages(), 1);
  for (const stream of [host, fleet, rollout]) stream.request.destroy();
  await until("the streams to close", () => (live.clients === 0 ? true : undefined));
});

test("pages opened and closed many times leave no listeners behind", async () => {
  const baseline = hostEvents.listenerCount("changed") + rolloutEvents.listenerCount("changed");
  for (let round = 0; round < 10; round++) {
    const streams = await Promise.all(Array.from({ length: 20 }, (_, i) => open(i % 2 === 0 ? "fleet" : `rollout:r-${i}`)));
    assert.equal(hostEvents.listenerCount("changed") + rolloutEvents.listenerCount("changed"), baseline + 20);
    // A change pending for a page that closes must not fire into a closed stream.
    hostEvents.emit("changed", "web1");
    for (const stream of streams) stream.request.destroy();
    await until("every stream to close", () => (live.clients === 0 ? true : undefined));
    assert.equal(hostEvents.listenerCount("changed") + rolloutEvents.listenerCount("changed"), baseline);
  }
});

test("topics are a closed set", () => {
  assert.deepEqual(parseTopic("host:Web1"), { kind: "host", name: "web1" });
  for (const bad of ["", "hosts", "host:", "host:a..b", "rollout:", "rollout:<x>", `rollout:${"a".repeat(101)}`, "fleet ", "__proto__"]) {
    assert.equal(parseTopic(bad), undefined, bad);
  }
});
