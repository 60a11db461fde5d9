import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import WebSocket from "ws";
import { hashToken, silentLogger, toNixBase32 } from "@ferry/core";
import { openSqliteStore, startController, type RunningController } from "@ferry/controller";
import {
  HostPhase,
  RolloutAction,
  decodeControllerFrame,
  encodeAgentFrame,
  type AgentBody,
  type ControllerBody,
  type ListAuditResponse,
  type ListHostsResponse,
  type ListTokensResponse,
  type RotateHostTokenResponse,
  type RotateTokenResponse,
  type StartRolloutResponse,
} from "@ferry/protocol";
import { startTestController, type TestController } from "./controller-fixture.js";
import { callMethod, createToken, mustCall } from "./operator-calls.js";
import { makeBundle, makeKey, removeScratch } from "../../core/test/bundle-helpers.js";

let t: TestController;
let address: string;
const call = (method: string, request: Record<string, unknown>, token: string | undefined) => callMethod(address, method, request, token);
const must = <T>(method: string, request: Record<string, unknown>, token: string) => mustCall<T>(address, method, request, token);

before(async () => {
  t = await startTestController({ heartbeatIntervalMs: 1000 });
  address = `127.0.0.1:${t.controller.grpcPort}`;
});
after(async () => {
  await t?.stop();
  removeScratch();
});

const basic = (secret: string): Record<string, string> => ({ authorization: `Basic ${Buffer.from(`ferry:${secret}`).toString("base64")}` });

/** Uploads a one-path closure (NAR + narinfo, unsigned) as `token`; returns its store path. */
async function pushClosure(name: string, token: string): Promise<string> {
  const bytes = randomBytes(256);
  const digest = toNixBase32(createHash("sha256").update(bytes).digest());
  const path = `/nix/store/${toNixBase32(randomBytes(20))}-${name}`;
  const nar = `nar/${digest}.nar`;
  const narinfo = [`StorePath: ${path}`, `URL: ${nar}`, "Compression: none", `NarHash: sha256:${digest}`, `NarSize: ${bytes.length}`, "References: ", ""];
  for (const [file, body] of [
    [nar, bytes],
    [`${path.slice(11, 43)}.narinfo`, narinfo.join("\n")],
  ] as const) {
    const response = await fetch(`${t.baseUrl}/cache/${file}`, { method: "PUT", body, headers: basic(token), signal: AbortSignal.timeout(5000) });
    assert.equal(response.status, 201, await response.text());
  }
  return path;
}

async function desiredOf(name: string): Promise<string> {
  return (await t.controller.store.getHost(name))?.desiredSystem ?? "absent";
}

describe("deploy tokens limited to tags and environments", () => {
  let staging: string;
  let production: string;
  let stagePath: string;
  let prodPath: string;

  before(async () => {
    await must("AddHost", { name: "stage-1", tags: ["staging"] }, t.adminToken);
    await must("AddHost", { name: "prod-1", tags: ["production"] }, t.adminToken);
    staging = await createToken(address, t.adminToken, "ci-staging", ["deploy", "read"], { tags: ["staging"], environments: ["staging"] });
    production = await createToken(address, t.adminToken, "ci-production", ["deploy"], { tags: ["production"], environments: ["production"] });
    const pusher = await createToken(address, t.adminToken, "ci-build", ["cache:push"]);
    stagePath = await pushClosure("nixos-system-stage-1", pusher);
    prodPath = await pushClosure("nixos-system-prod-1", pusher);
  });

  test("a token limited to tag staging cannot deploy or dry-run a host without that tag, alone or among others", async () => {
    for (const targets of [
      [{ hostName: "prod-1", storePath: prodPath }],
      [
        { hostName: "stage-1", storePath: stagePath },
        { hostName: "prod-1", storePath: prodPath },
      ],
    ]) {
      const refused = await call("Deploy", { targets, allowUnsigned: true }, staging);
      assert.equal(refused.code, "E_SCOPE");
      assert.match(refused.message, /may deploy only to hosts tagged staging; prod-1 carries production/);
    }
    assert.equal(await desiredOf("prod-1"), "");
    assert.equal(await desiredOf("stage-1"), "", "a refused deploy records nothing, not even for its allowed hosts");
    const dry = await call("DryActivate", { hostName: "prod-1", storePath: prodPath }, staging);
    assert.equal(dry.code, "E_SCOPE");
  });

  test("a token limited to environments may not deploy directly: a direct deploy has no environment", async () => {
    const refused = await call("Deploy", { targets: [{ hostName: "stage-1", storePath: stagePath }], allowUnsigned: true }, staging);
    assert.equal(refused.code, "E_SCOPE");
    assert.match(refused.message, /may deploy only rollouts of environment staging; a direct deploy has none/);
    assert.equal(await desiredOf("stage-1"), "");
  });

  test("a deploy token without limits deploys any host, and the deployment records the token's name", async () => {
    const anywhere = await createToken(address, t.adminToken, "release-manager", ["deploy"]);
    const response = await must<{ deploymentId: string }>("Deploy", { targets: [{ hostName: "prod-1", storePath: prodPath }], allowUnsigned: true }, anywhere);
    assert.equal(await desiredOf("prod-1"), prodPath);
    const db = new Database(join(t.dataDir, "state.sqlite"), { readonly: true });
    try {
      const row = db.prepare("SELECT requested_by FROM deployments WHERE id = ?").get(response.deploymentId) as { requested_by: string };
      assert.equal(row.requested_by, "release-manager");
    } finally {
      db.close();
    }
  });

  test("rollouts: only of the token's environments and tagged hosts; requestedBy is the token's name, whatever the client says", async () => {
    const wrongEnvironment = await call(
      "StartRollout",
      { targets: [{ hostName: "prod-1", storePath: prodPath }], environment: "staging", allowUnsigned: true },
      production,
    );
    assert.equal(wrongEnvironment.code, "E_SCOPE");
    assert.match(wrongEnvironment.message, /environment production; this one is "staging"/);
    const wrongHost = await call(
      "StartRollout",
      { targets: [{ hostName: "stage-1", storePath: stagePath }], environment: "production", allowUnsigned: true },
      production,
    );
    assert.equal(wrongHost.code, "E_SCOPE");
    assert.equal((await must<{ rollouts: unknown[] }>("ListRollouts", {}, t.adminToken)).rollouts.length, 0, "a refused rollout is not recorded");

    const { rollout } = await must<StartRolloutResponse>(
      "StartRollout",
      { targets: [{ hostName: "stage-1", storePath: stagePath }], environment: "staging", requestedBy: "mallory@laptop", allowUnsigned: true },
      staging,
    );
    assert.equal(rollout?.requestedBy, "ci-staging");
    const stagingRollout = rollout?.id as string;

    // ControlRollout is judged by the rollout's environment and hosts.
    const { rollout: prodRollout } = await must<StartRolloutResponse>(
      "StartRollout",
      { targets: [{ hostName: "prod-1", storePath: prodPath }], environment: "production", allowUnsigned: true },
      t.adminToken,
    );
    assert.equal(prodRollout?.requestedBy, "admin");
    const refused = await call("ControlRollout", { id: prodRollout?.id, action: RolloutAction.ROLLOUT_ACTION_ABORT, reason: "" }, staging);
    assert.equal(refused.code, "E_SCOPE");
    assert.notEqual((await t.controller.store.rollouts.getRollout(prodRollout?.id as string)).state, "aborted");
    await must("ControlRollout", { id: stagingRollout, action: RolloutAction.ROLLOUT_ACTION_ABORT, reason: "test" }, staging);
    await must("ControlRollout", { id: prodRollout?.id, action: RolloutAction.ROLLOUT_ACTION_ABORT, reason: "test" }, production);
  });
});

describe("expired, revoked and rotated tokens", () => {
  test("an expired token is refused with E_AUTH", async () => {
    const secret = await createToken(address, t.adminToken, "short-lived", ["read"], { expiresInMs: 400 });
    assert.equal((await call("ListHosts", {}, secret)).code, "ok");
    await new Promise((resolve) => setTimeout(resolve, 500));
    const refused = await call("ListHosts", {}, secret);
    assert.equal(refused.code, "E_AUTH");
    assert.match(refused.message, /"short-lived" expired at/);
  });

  test("a revoked token is refused at once, over gRPC and HTTP; its name can be used again, its secret never", async () => {
    const secret = await createToken(address, t.adminToken, "laptop", ["read", "cache:push"]);
    assert.equal((await call("ListHosts", {}, secret)).code, "ok");
    await must("RevokeToken", { name: "laptop" }, t.adminToken);
    const refused = await call("ListHosts", {}, secret);
    assert.equal(refused.code, "E_AUTH");
    assert.match(refused.message, /"laptop" was revoked/);
    const put = await fetch(`${t.baseUrl}/cache/nar/${"1".repeat(52)}.nar`, {
      method: "PUT",
      body: "x",
      headers: basic(secret),
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(put.status, 401);
    const active = (await must<ListTokensResponse>("ListTokens", {}, t.adminToken)).tokens.map((token) => token.name);
    assert.ok(!active.includes("laptop"));
    const all = (await must<ListTokensResponse>("ListTokens", { includeRevoked: true }, t.adminToken)).tokens;
    assert.ok(all.find((token) => token.name === "laptop")?.revokedAtMs);
    assert.equal((await call("RevokeToken", { name: "laptop" }, t.adminToken)).code, "E_UNKNOWN_TOKEN");

    const again = await createToken(address, t.adminToken, "laptop", ["read"]);
    assert.equal((await call("ListHosts", {}, again)).code, "ok");
    assert.equal((await call("ListHosts", {}, secret)).code, "E_AUTH");
  });

  test("the built-in admin token cannot be revoked, and names are checked", async () => {
    assert.equal((await call("RevokeToken", { name: "admin" }, t.adminToken)).code, "E_BAD_ARGUMENT");
    assert.equal((await call("CreateToken", { name: "admin", scopes: ["read"] }, t.adminToken)).code, "E_TOKEN_EXISTS");
    assert.equal((await call("CreateToken", { name: "../etc", scopes: ["read"] }, t.adminToken)).code, "E_BAD_ARGUMENT");
    assert.equal((await call("CreateToken", { name: "x", scopes: ["root"] }, t.adminToken)).code, "E_BAD_ARGUMENT");
    assert.equal((await call("CreateToken", { name: "x", scopes: ["read"], tags: ["staging"] }, t.adminToken)).code, "E_BAD_ARGUMENT");
    assert.equal((await call("ListTokens", {}, t.adminToken)).code, "ok");
    assert.ok(!(await must<ListTokensResponse>("ListTokens", {}, t.adminToken)).tokens.some((token) => token.name === "x"));
  });

  test("rotating a named token: same name and scopes, the old secret refused, the new one works", async () => {
    const old = await createToken(address, t.adminToken, "rotating", ["read"]);
    const { secret, token } = await must<RotateTokenResponse>("RotateToken", { name: "rotating" }, t.adminToken);
    assert.deepEqual(token?.scopes, ["read"]);
    assert.equal((await call("ListHosts", {}, old)).code, "E_AUTH");
    assert.equal((await call("ListHosts", {}, secret)).code, "ok");
    assert.equal((await call("AddHost", { name: "not-allowed" }, secret)).code, "E_SCOPE");
  });
});

describe("host agent token rotation", () => {
  interface Link {
    ws: WebSocket;
    frames: ControllerBody[];
    closed: Promise<number>;
    send(body: AgentBody): void;
    waitFor(what: (frame: ControllerBody) => boolean): Promise<ControllerBody>;
  }

  async function link(): Promise<Link> {
    const ws = new WebSocket(`ws://127.0.0.1:${t.controller.httpPort}/agent`, { perMessageDeflate: false });
    ws.on("error", () => undefined);
    const frames: ControllerBody[] = [];
    const waiters: (() => void)[] = [];
    ws.on("message", (data) => {
      frames.push(decodeControllerFrame(Buffer.from(data as Buffer)).body);
      waiters.splice(0).forEach((wake) => wake());
    });
    const closed = new Promise<number>((resolve) => ws.on("close", (code) => resolve(code)));
    await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
    return {
      ws,
      frames,
      closed,
      send: (body) => ws.send(encodeAgentFrame(body), { binary: true }),
      async waitFor(what) {
        const deadline = Date.now() + 5000;
        for (;;) {
          const found = frames.find(what);
          if (found) return found;
          if (Date.now() > deadline) throw new Error(`no such frame; got ${JSON.stringify(frames)}`);
          await new Promise<void>((resolve) => {
            waiters.push(resolve);
            setTimeout(resolve, 200);
          });
        }
      },
    };
  }

  const hello = (token: string): AgentBody => ({
    $case: "hello",
    value: { hostName: "edge-1", token, currentSystem: "", agentVersion: "test", appliedSerial: 0, phase: HostPhase.HOST_PHASE_IDLE },
  });

  test("the connected agent stays connected through a rotation; on reconnect the new token works and the old one is refused", async () => {
    const hostsAdmin = await createToken(address, t.adminToken, "ops", ["hosts:admin", "read"]);
    const added = await must<{ agentToken: string }>("AddHost", { name: "edge-1" }, hostsAdmin);
    const agent = await link();
    agent.send(hello(added.agentToken));
    await agent.waitFor((frame) => frame.$case === "welcome");

    const rotated = await must<RotateHostTokenResponse>("RotateHostToken", { hostName: "edge-1" }, hostsAdmin);
    assert.equal(rotated.online, true);
    assert.notEqual(rotated.agentToken, added.agentToken);

    // The link it authenticated on carries on: heartbeats are answered, the host is online.
    agent.send({ $case: "heartbeat", value: { sequence: 41, sentAtMs: Date.now(), currentSystem: "", phase: HostPhase.HOST_PHASE_IDLE } });
    await agent.waitFor((frame) => frame.$case === "heartbeatAck" && frame.value.sequence === 41);
    const { hosts } = await must<ListHostsResponse>("ListHosts", { names: ["edge-1"] }, hostsAdmin);
    assert.equal(hosts[0]?.online, true);
    assert.equal(agent.ws.readyState, WebSocket.OPEN);

    // The link drops; a reconnect with the old token is refused, with the new one welcomed.
    agent.ws.close();
    await agent.closed;
    const stale = await link();
    stale.send(hello(added.agentToken));
    assert.equal(await stale.closed, 4001);
    assert.deepEqual(
      stale.frames.map((frame) => (frame.$case === "refusal" ? frame.value.code : frame.$case)),
      ["E_AUTH"],
    );
    const fresh = await link();
    fresh.send(hello(rotated.agentToken));
    await fresh.waitFor((frame) => frame.$case === "welcome");
    fresh.ws.close();
    await fresh.closed;
  });

  test("rotating the token of an unknown host changes nothing", async () => {
    assert.equal((await call("RotateHostToken", { hostName: "ghost" }, t.adminToken)).code, "E_UNKNOWN_HOST");
  });
});

// Runs after the tests above and checks the entries their actions left.
describe("the audit trail", () => {
  test("every action carries the name of the token that did it", async () => {
    const pusher = await createToken(address, t.adminToken, "audit-pusher", ["cache:push"]);
    const pushed = await pushClosure("audited", pusher);
    await must("RemoveCachePaths", { storePaths: [pushed] }, t.adminToken);

    const key = makeKey("site-key-1");
    writeFileSync(join(t.dataDir, "bundle-trusted-keys"), `${key.publicKey}\n`);
    const bundle = await makeBundle(key, { label: "stage-1" });
    const importer = await createToken(address, t.adminToken, "site-import", ["bundles:import"]);
    const upload = await fetch(`${t.baseUrl}/bundles/upload`, {
      method: "PUT",
      body: bundle.bytes,
      headers: basic(importer),
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(upload.status, 200, await upload.text());

    const ops = await createToken(address, t.adminToken, "window-keeper", ["hosts:admin"]);
    const { window } = await must<{ window: { id: string } }>(
      "AddMaintenanceWindow",
      { window: { id: "", hostName: "", tag: "staging", cron: "0 3 * * *", durationMs: 3_600_000, timezone: "UTC" } },
      ops,
    );
    await must("RemoveMaintenanceWindow", { id: window.id }, ops);

    const { entries } = await must<ListAuditResponse>("ListAudit", { limit: 1000 }, t.adminToken);
    const did = (actor: string, action: string, target?: string): boolean =>
      entries.some((entry) => entry.actor === actor && entry.action === action && (target === undefined || entry.target === target));
    assert.ok(did("admin", "host.add", "stage-1"));
    assert.ok(did("ops", "host.add", "edge-1"));
    assert.ok(did("ops", "host.rotate-token", "edge-1"));
    assert.ok(did("admin", "token.create", "ci-staging"));
    assert.ok(did("admin", "token.revoke", "laptop"));
    assert.ok(did("admin", "token.rotate", "rotating"));
    assert.ok(did("ci-build", "cache.push"));
    assert.ok(did("audit-pusher", "cache.push", pushed));
    assert.ok(did("admin", "cache.rm", pushed));
    assert.ok(did("release-manager", "deploy"));
    assert.ok(did("ci-staging", "rollout.start"));
    assert.ok(did("ci-staging", "rollout.abort"));
    assert.ok(did("ci-production", "rollout.abort"));
    assert.ok(did("site-import", "bundle.import", `sequence ${bundle.manifest.sequence}`));
    assert.ok(did("window-keeper", "window.add", window.id));
    assert.ok(did("window-keeper", "window.remove", window.id));
    assert.ok(!entries.some((entry) => entry.actor === "mallory@laptop"), "a client-supplied name is never the actor");
    const start = entries.find((entry) => entry.actor === "ci-staging" && entry.action === "rollout.start");
    assert.equal((JSON.parse(start?.detailJson ?? "{}") as { clientNote?: string }).clientNote, "mallory@laptop");
    // Newest first, and filtered by token.
    assert.ok(entries.every((entry, i) => i === 0 || (entries[i - 1]?.id ?? 0) > entry.id));
    const own = await must<ListAuditResponse>("ListAudit", { actor: "ops" }, t.adminToken);
    assert.deepEqual([...new Set(own.entries.map((entry) => entry.actor))], ["ops"]);
    // Refused actions are not in it.
    assert.ok(!did("ci-staging", "deploy"));
  });
});

describe("the admin token and the audit trail across restarts", () => {
  let dataDir: string;
  let running: RunningController | undefined;
  const start = async (history?: { maxAgeMs: number }): Promise<RunningController> =>
    startController({
      dataDir,
      listen: { host: "127.0.0.1", port: 0 },
      grpcListen: { host: "127.0.0.1", port: 0 },
      log: silentLogger(),
      ...(history ? { history } : {}),
    });
  before(() => {
    dataDir = mkdtempSync(join(tmpdir(), "ferry-tokens-"));
  });
  after(async () => {
    await running?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test("ferry token rotate admin: the new secret is in admin.token at once, the old one refused, without and after a restart", async () => {
    running = await start();
    const grpc = `127.0.0.1:${running.grpcPort}`;
    const old = readFileSync(join(dataDir, "admin.token"), "utf8").trim();
    const { secret, token } = await mustCall<RotateTokenResponse>(grpc, "RotateToken", { name: "admin" }, old);
    assert.equal(token?.builtin, true);
    assert.equal(readFileSync(join(dataDir, "admin.token"), "utf8").trim(), secret);
    assert.equal((await callMethod(grpc, "ListHosts", {}, old)).code, "E_AUTH");
    assert.equal((await callMethod(grpc, "CreateToken", { name: "kept", scopes: ["read"] }, secret)).code, "ok");
    assert.equal((await callMethod(grpc, "RotateToken", { name: "admin", expiresInMs: 1000 }, secret)).code, "E_BAD_ARGUMENT");

    await running.stop();
    running = await start();
    const again = `127.0.0.1:${running.grpcPort}`;
    assert.equal((await callMethod(again, "ListHosts", {}, secret)).code, "ok");
    assert.equal((await callMethod(again, "ListHosts", {}, old)).code, "E_AUTH");
    const { tokens } = await mustCall<ListTokensResponse>(again, "ListTokens", {}, secret);
    assert.deepEqual(
      tokens.map((t) => t.name),
      ["admin", "kept"],
    );
  });

  test("audit entries older than the history retention are pruned", async () => {
    await running?.stop();
    running = undefined;
    const store = await openSqliteStore(join(dataDir, "state.sqlite"));
    const now = Date.now();
    await store.audit.append([
      { atMs: now - 40 * 86_400_000, actor: "old", action: "deploy", target: "d-old", detail: {} },
      { atMs: now - 1000, actor: "new", action: "deploy", target: "d-new", detail: {} },
    ]);
    await store.close();
    running = await start({ maxAgeMs: 30 * 86_400_000 });
    const admin = readFileSync(join(dataDir, "admin.token"), "utf8").trim();
    const { entries } = await mustCall<ListAuditResponse>(`127.0.0.1:${running.grpcPort}`, "ListAudit", {}, admin);
    assert.ok(entries.some((entry) => entry.target === "d-new"));
    assert.ok(!entries.some((entry) => entry.target === "d-old"));
  });
});

test("token secrets are stored only as hashes", async () => {
  const secret = await createToken(address, t.adminToken, "hashed", ["read"]);
  const db = new Database(join(t.dataDir, "state.sqlite"), { readonly: true });
  try {
    const row = db.prepare("SELECT token_hash FROM operator_tokens WHERE name = 'hashed'").get() as { token_hash: string };
    assert.equal(row.token_hash, hashToken(secret));
    const dump = JSON.stringify(db.prepare("SELECT * FROM operator_tokens").all()) + JSON.stringify(db.prepare("SELECT * FROM audit").all());
    assert.ok(!dump.includes(secret));
  } finally {
    db.close();
  }
});
