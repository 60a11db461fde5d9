// GET /metrics of a real controller: scraped before and after a deploy and a
// small rollout that fake agents (real WebSockets, answering every desired
// system at once) carry out, the counters move by exactly what happened.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { request as httpRequest } from "node:http";
import WebSocket from "ws";
import { hashToken, toNixBase32 } from "@ferry/core";
import { RolloutPolicy } from "@ferry/protocol";
import { startTestController, type TestController } from "./controller-fixture.js";
import { createToken, mustCall } from "./operator-calls.js";
import { sampleKey, scrape, type Samples } from "./metrics-scrape.js";
import { fakeAgent as connectFakeAgent, until } from "./fake-fleet.js";

const TOKENS = { web1: "web1-token-0123456789abcdef0123456789abcdef", web2: "web2-token-0123456789abcdef0123456789abcdef" } as const;

let t: TestController;
let address: string;
let readToken: string;
const sockets: WebSocket[] = [];

before(async () => {
  t = await startTestController();
  address = `127.0.0.1:${t.controller.grpcPort}`;
  for (const [name, token] of Object.entries(TOKENS)) await t.controller.store.addHost(name, hashToken(token), ["web"], Date.now());
  readToken = await createToken(address, t.adminToken, "prometheus", ["read"]);
});
after(async () => {
  for (const socket of sockets) socket.terminate();
  await t.stop();
});

const basic = (): string => `Basic ${Buffer.from(`ferry:${t.adminToken}`).toString("base64")}`;

/** Puts a one-path closure (NAR and signed narinfo) in the controller's cache; returns its store path and NAR file. */
async function cached(name: string): Promise<{ path: string; nar: string; narinfo: string }> {
  const bytes = randomBytes(512);
  const digest = toNixBase32(createHash("sha256").update(bytes).digest());
  const path = `/nix/store/${toNixBase32(randomBytes(20))}-${name}`;
  const nar = `nar/${digest}.nar`;
  const narinfo = `${path.slice(11, 43)}.narinfo`;
  const text = [
    `StorePath: ${path}`,
    `URL: ${nar}`,
    "Compression: none",
    `NarHash: sha256:${digest}`,
    `NarSize: 512`,
    "References: ",
    `Sig: test:${randomBytes(64).toString("base64")}`,
    "",
  ];
  for (const [file, body] of [
    [nar, bytes],
    [narinfo, text.join("\n")],
  ] as const) {
    const response = await fetch(`${t.baseUrl}/cache/${file}`, { method: "PUT", body, headers: { authorization: basic() } });
    assert.equal(response.status, 201, file);
  }
  return { path, nar, narinfo };
}

/** An agent that answers every desired system with success at once (fake-fleet.ts), closed after the tests. */
async function fakeAgent(hostName: string, token: string): Promise<WebSocket> {
  const { socket } = await connectFakeAgent(t.controller.httpPort, hostName, token);
  sockets.push(socket);
  return socket;
}

const delta = (after: Samples, before: Samples, name: string, labels?: Record<string, string>): number =>
  (after.get(sampleKey(name, labels)) ?? 0) - (before.get(sampleKey(name, labels)) ?? 0);

describe("GET /metrics", () => {
  test("counters move by exactly one deploy and one two-host rollout", async () => {
    const first = await cached("nixos-system-web1-a");
    const web1b = await cached("nixos-system-web1-b");
    const web2b = await cached("nixos-system-web2-b");
    const before = await scrape(t.baseUrl, readToken);

    await fakeAgent("web1", TOKENS.web1);
    await fakeAgent("web2", TOKENS.web2);
    const refused = await fakeAgent("web2", "not-the-token");
    await new Promise((resolve) => refused.once("close", resolve));
    await until("both agents online", async () => ((await scrape(t.baseUrl, readToken)).get("ferry_agent_connections") === 2 ? true : undefined));

    await mustCall(address, "Deploy", { targets: [{ hostName: "web1", storePath: first.path }] }, t.adminToken);
    await until("web1 to confirm", async () => ((await t.controller.store.getHost("web1"))?.currentSystem === first.path ? true : undefined));
    const started = await mustCall<{ rollout: { id: string } }>(
      address,
      "StartRollout",
      {
        targets: [
          { hostName: "web1", storePath: web1b.path },
          { hostName: "web2", storePath: web2b.path },
        ],
        policy: RolloutPolicy.fromPartial({ maxUnavailable: 1, canary: { value: 1, percent: false } }),
        environment: "test",
      },
      t.adminToken,
    );
    await until("the rollout to complete", async () => {
      const rollout = await t.controller.store.rollouts.getRollout(started.rollout.id);
      return rollout.state === "completed" ? rollout : undefined;
    });
    // Cache reads: one narinfo, one NAR of 512 bytes.
    assert.equal((await fetch(`${t.baseUrl}/cache/${first.narinfo}`)).status, 200);
    assert.equal((await (await fetch(`${t.baseUrl}/cache/${first.nar}`)).arrayBuffer()).byteLength, 512);
    // The rollout's last result may reach the counters a moment after the rollout reads it.
    const afterRun = await until("the rollout to be counted", async () => {
      const samples = await scrape(t.baseUrl, readToken);
      return delta(samples, before, "ferry_rollouts_total", { outcome: "all-confirmed" }) === 1 ? samples : undefined;
    });

    const moved = (name: string, labels?: Record<string, string>): number => delta(afterRun, before, name, labels);
    // One deploy and two rollout activations confirmed; two prefetches.
    assert.equal(moved("ferry_deployments_total", { outcome: "confirmed" }), 3);
    assert.equal(moved("ferry_deployments_total", { outcome: "prefetched" }), 2);
    assert.equal(moved("ferry_deployments_total", { outcome: "failed" }), 0);
    assert.equal(moved("ferry_desired_published_total", { kind: "activate" }), 3);
    assert.equal(moved("ferry_desired_published_total", { kind: "prefetch" }), 2);
    assert.equal(moved("ferry_publish_to_confirmed_seconds_count"), 3);
    assert.equal(moved("ferry_rollouts_total", { outcome: "aborted" }), 0);
    assert.equal(moved("ferry_agent_connects_total"), 2);
    assert.equal(moved("ferry_agent_refusals_total", { code: "E_AUTH" }), 1);
    assert.equal(moved("ferry_agent_frames_total", { direction: "in", kind: "hello" }), 3);
    assert.equal(moved("ferry_agent_frames_total", { direction: "in", kind: "result" }), 5);
    assert.equal(moved("ferry_agent_frames_total", { direction: "out", kind: "welcome" }), 2);
    assert.equal(moved("ferry_agent_frames_total", { direction: "out", kind: "desired" }), 5);
    assert.equal(moved("ferry_agent_frames_total", { direction: "out", kind: "refusal" }), 1);
    assert.equal(moved("ferry_grpc_requests_total", { method: "Deploy", code: "ok" }), 1);
    assert.equal(moved("ferry_grpc_requests_total", { method: "StartRollout", code: "ok" }), 1);
    assert.equal(moved("ferry_grpc_request_duration_seconds_count", { method: "Deploy" }), 1);
    assert.equal(moved("ferry_cache_requests_total", { method: "GET", status: "200" }), 2);
    assert.ok(moved("ferry_cache_sent_bytes_total") >= 512, `sent ${moved("ferry_cache_sent_bytes_total")} bytes`);
    assert.ok(moved("ferry_http_request_duration_seconds_count", { method: "GET", route: "cache-nar" }) === 1);
    // Gauges are read from the store and hub as they stand.
    assert.equal(afterRun.get(sampleKey("ferry_hosts", { link: "online", phase: "active" })), 2);
    assert.equal(afterRun.get("ferry_agent_connections"), 2);
    assert.ok((afterRun.get("ferry_process_resident_memory_bytes") ?? 0) > 0, "process metrics carry the ferry_ prefix");
  });

  test("needs a read-scoped token: none is 401, a token without read is 403, nothing is leaked", async () => {
    const none = await fetch(`${t.baseUrl}/metrics`);
    assert.equal(none.status, 401);
    assert.match(none.headers.get("www-authenticate") ?? "", /^Bearer/);
    const text = await none.text();
    assert.match(text, /^E_AUTH: /);
    assert.doesNotMatch(text, /ferry_/);
    const wrong = await fetch(`${t.baseUrl}/metrics`, { headers: { authorization: "Bearer not-a-token" } });
    assert.equal(wrong.status, 401);
    const pusher = await createToken(address, t.adminToken, "ci-push", ["cache:push"]);
    const scoped = await fetch(`${t.baseUrl}/metrics`, { headers: { authorization: `Bearer ${pusher}` } });
    assert.equal(scoped.status, 403);
    assert.match(await scoped.text(), /^E_SCOPE: /);
    const posted = await fetch(`${t.baseUrl}/metrics`, { method: "POST", headers: { authorization: `Bearer ${readToken}` } });
    assert.equal(posted.status, 405);
  });

  test("with metricsPublic, no token is needed", async () => {
    const open = await startTestController({ metricsPublic: true });
    try {
      const response = await fetch(`${open.baseUrl}/metrics`);
      assert.equal(response.status, 200);
      assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
      assert.match(await response.text(), /^# HELP ferry_/m);
    } finally {
      await open.stop();
    }
  });
});

/** One GET /metrics on its own connection from `localAddress`; the status, or 0 when the socket was cut. */
function rawScrape(port: number, localAddress: string, token?: string): Promise<number> {
  return new Promise((resolve) => {
    const request = httpRequest(
      { host: "127.0.0.1", port, path: "/metrics", localAddress, agent: false, headers: token ? { authorization: `Bearer ${token}` } : {} },
      (response) => {
        response.resume();
        response.on("end", () => resolve(response.statusCode ?? 0));
        response.on("error", () => resolve(0));
      },
    );
    request.on("error", () => resolve(0));
    request.end();
  });
}

describe("GET /metrics under a flood", () => {
  test("unauthenticated scrapes are held to the edge limits; authenticated ones share collections and all succeed", async () => {
    const limits = { maxPendingConnections: 60, maxPendingPerAddress: 20, headersTimeoutMs: 2000, idleTimeoutMs: 4000, maxConcurrentUploads: 2 };
    const edge = await startTestController({ edgeLimits: limits });
    try {
      const token = await createToken(`127.0.0.1:${edge.controller.grpcPort}`, edge.adminToken, "prometheus", ["read"]);
      const anonymous = await Promise.all(Array.from({ length: 150 }, () => rawScrape(edge.controller.httpPort, "127.0.0.2")));
      // Each is turned away: refused at the socket over the limit, else answered 401; none is served.
      assert.ok(
        anonymous.every((status) => status === 0 || status === 401),
        `statuses: ${[...new Set(anonymous)].join(",")}`,
      );
      assert.ok(anonymous.includes(401));
      const authenticated = await Promise.all(Array.from({ length: 100 }, () => rawScrape(edge.controller.httpPort, "127.0.0.3", token)));
      assert.deepEqual(new Set(authenticated), new Set([200]));
      const after = await scrape(edge.baseUrl, token);
      const served = after.get(sampleKey("ferry_http_request_duration_seconds_count", { method: "GET", route: "metrics" })) ?? 0;
      assert.ok(served >= 100 && served <= 250, `${served} scrapes recorded`);
      // Made-up paths add requests, not series: the first probes bring their route's and status's
      // series (and Node's own may appear, e.g. a new kind of GC), 50 more distinct paths bring none.
      const probe = async () => {
        for (let i = 0; i < 50; i++) await fetch(`${edge.baseUrl}/cache/probe-${randomBytes(8).toString("hex")}`);
        return scrape(edge.baseUrl, token);
      };
      const first = await probe();
      const probed = await probe();
      const added = [...probed.keys()].filter((key) => !first.has(key));
      assert.ok(added.length <= 5, `${added.length} new series from 50 more distinct paths: ${added.join(" ")}`);
      assert.ok(![...probed.keys()].some((key) => key.includes("probe-")));
    } finally {
      await edge.stop();
    }
  });
});
