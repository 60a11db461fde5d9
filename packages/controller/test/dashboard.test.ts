// The dashboard over plain HTTP (the browser test drives it in Chromium):
// every page needs a session, a session is never the token, forms need the
// session's form token, actions need deploy for the rollout's hosts, and
// floods of logins are bounded.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { hashToken } from "@ferry/core";
import { RolloutPolicy } from "@ferry/protocol";
import { startTestController, type TestController } from "./controller-fixture.js";
import { createToken, mustCall } from "./operator-calls.js";
import { cachedPath, until } from "./fake-fleet.js";

let t: TestController;
let address: string;
let readToken: string;
let deployToken: string;

before(async () => {
  t = await startTestController({ dashboard: { loginsPerMinute: 1000 } });
  address = `127.0.0.1:${t.controller.grpcPort}`;
  for (const name of ["web1", "web2"]) await t.controller.store.addHost(name, hashToken(`${name}-token-0123456789abcdef0123456789`), ["web"], Date.now());
  readToken = await createToken(address, t.adminToken, "viewer", ["read"]);
  deployToken = await createToken(address, t.adminToken, "deployer", ["read", "deploy"], { tags: ["web"] });
});
after(() => t.stop());

const get = (path: string, cookie?: string): Promise<Response> => fetch(`${t.baseUrl}${path}`, { redirect: "manual", headers: cookie ? { cookie } : {} });

function post(path: string, fields: Record<string, string>, cookie?: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${t.baseUrl}${path}`, {
    method: "POST",
    redirect: "manual",
    body: new URLSearchParams(fields).toString(),
    headers: { "content-type": "application/x-www-form-urlencoded", ...(cookie ? { cookie } : {}), ...headers },
  });
}

/** Logs in through the form; returns the cookie to send. */
async function login(token: string): Promise<string> {
  const response = await post("/ui/login", { token });
  assert.equal(response.status, 303, await response.text());
  const setCookie = response.headers.get("set-cookie") ?? "";
  return setCookie.split(";")[0] as string;
}

const csrfOf = async (response: Response): Promise<string> => /name="csrf" value="([^"]+)"/.exec(await response.text())?.[1] ?? "";

async function startRollout(): Promise<string> {
  const targets = [];
  for (const hostName of ["web1", "web2"]) targets.push({ hostName, storePath: await cachedPath(t.baseUrl, t.adminToken, `system-${hostName}`) });
  // No agent is connected: the rollout waits in its prefetch, where every action but promote applies.
  const started = await mustCall<{ rollout: { id: string } }>(
    address,
    "StartRollout",
    { targets, policy: RolloutPolicy.fromPartial({ maxUnavailable: 1, canary: { value: 1, percent: false }, prefetchTimeoutMs: 3_600_000 }) },
    t.adminToken,
  );
  return started.rollout.id;
}

describe("dashboard", () => {
  test("every page needs a session: no cookie, a forged one or an unknown one lead to the login", async () => {
    for (const path of ["/ui/", "/ui/hosts/web1", "/ui/rollouts", "/ui/rollouts/r-1", "/ui/audit", "/ui/nothing"]) {
      for (const cookie of [undefined, "ferry_session=forged", `ferry_session=${"A".repeat(43)}`, `ferry_session=${"x".repeat(5000)}`]) {
        const response = await get(path, cookie);
        assert.equal(response.status, 303, `${path} ${cookie}`);
        assert.equal(response.headers.get("location"), "/ui/login");
      }
    }
    assert.equal((await get("/ui/events?topic=fleet")).status, 401);
    const page = await get("/ui/login");
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-security-policy") ?? "", /script-src 'self';/);
    assert.doesNotMatch(page.headers.get("content-security-policy") ?? "", /unsafe-inline/);
    assert.equal(page.headers.get("x-frame-options"), "DENY");
    assert.equal(page.headers.get("cache-control"), "no-store");
    assert.doesNotMatch(await page.text(), /<script>/, "no inline script");
  });

  test("login: a wrong token or one without read is refused; a good one gets an HttpOnly SameSite cookie that is not the token", async () => {
    const wrong = await post("/ui/login", { token: "not-a-token" });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers.get("set-cookie"), null);
    const pusher = await createToken(address, t.adminToken, "pusher", ["cache:push"]);
    assert.equal((await post("/ui/login", { token: pusher })).status, 403);
    assert.equal((await post("/ui/login", { token: "x".repeat(5000) })).status, 400, "more than a form's worth");
    assert.equal((await post("/ui/login", { token: readToken }, undefined, { origin: "http://evil.example" })).status, 403);
    const response = await post("/ui/login", { token: readToken });
    assert.equal(response.status, 303);
    assert.equal(response.headers.get("location"), "/ui/");
    const setCookie = response.headers.get("set-cookie") ?? "";
    assert.match(setCookie, /^ferry_session=[A-Za-z0-9_-]{43}; Path=\/ui; HttpOnly; SameSite=Strict; Max-Age=\d+$/);
    assert.ok(!setCookie.includes(readToken));
    const fleet = await get("/ui/", setCookie.split(";")[0]);
    assert.equal(fleet.status, 200);
    const text = await fleet.text();
    assert.match(text, /href="\/ui\/hosts\/web1"/);
    assert.ok(!text.includes(readToken), "the page never shows the token");
  });

  test("what agents report is escaped", async () => {
    await t.controller.store.recordReport("web2", {
      lastErrorCode: "E_ACTIVATION_FAILED",
      lastErrorMessage: "<b>bold</b>",
      lastErrorOutput: "<script>alert(1)</script>\n& more",
    });
    const text = await (await get("/ui/hosts/web2", await login(readToken))).text();
    assert.ok(text.includes("&lt;script&gt;alert(1)&lt;/script&gt;\n&amp; more"));
    assert.ok(!text.includes("<script>alert"));
    assert.ok(!text.includes("<b>bold"));
  });

  test("a revoked token ends its sessions; logout ends the session", async () => {
    const secret = await createToken(address, t.adminToken, "short-lived", ["read"]);
    const cookie = await login(secret);
    assert.equal((await get("/ui/", cookie)).status, 200);
    await mustCall(address, "RevokeToken", { name: "short-lived" }, t.adminToken);
    assert.equal((await get("/ui/", cookie)).status, 303);

    const other = await login(readToken);
    const csrf = await csrfOf(await get("/ui/", other));
    assert.equal((await post("/ui/logout", { csrf: "wrong" }, other)).status, 403);
    assert.equal((await get("/ui/", other)).status, 200, "a logout without the form token changes nothing");
    const out = await post("/ui/logout", { csrf }, other);
    assert.equal(out.status, 303);
    assert.match(out.headers.get("set-cookie") ?? "", /Max-Age=0/);
    assert.equal((await get("/ui/", other)).status, 303);
  });

  test("rollout controls: a missing or wrong form token is 403, a read-only token is 403, and nothing changes; deploy aborts it, audited", async () => {
    const id = await startRollout();
    const state = async (): Promise<string> => (await t.controller.store.rollouts.getRollout(id)).state;
    const before = await state();
    const viewer = await login(readToken);
    const viewerPage = await get(`/ui/rollouts/${id}`, viewer);
    assert.equal(viewerPage.status, 200);
    const viewerText = await viewerPage.text();
    assert.doesNotMatch(viewerText, /rollout-actions/, "no controls for a read-only token");
    const viewerCsrf = /name="csrf" value="([^"]+)"/.exec(viewerText)?.[1] as string;
    const deployer = await login(deployToken);
    const page = await get(`/ui/rollouts/${id}`, deployer);
    const csrf = await csrfOf(page);
    assert.ok(csrf.length > 20);

    const control = `/ui/rollouts/${id}/control`;
    assert.equal((await post(control, { action: "abort" }, deployer)).status, 403);
    assert.equal((await post(control, { action: "abort", csrf: "x".repeat(csrf.length) }, deployer)).status, 403);
    assert.equal((await post(control, { action: "abort", csrf: viewerCsrf }, deployer)).status, 403, "another session's form token");
    assert.equal((await post(control, { action: "abort", csrf }, undefined)).status, 303, "no session: to the login");
    assert.equal((await post(control, { action: "abort", csrf }, deployer, { origin: "http://evil.example" })).status, 403);
    const asJson = await fetch(`${t.baseUrl}${control}`, {
      method: "POST",
      redirect: "manual",
      body: JSON.stringify({ action: "abort", csrf }),
      headers: { cookie: deployer, "content-type": "application/json" },
    });
    assert.equal(asJson.status, 403);
    const readOnly = await post(control, { action: "abort", csrf: viewerCsrf }, viewer);
    assert.equal(readOnly.status, 403);
    assert.match(await readOnly.text(), /E_SCOPE/);
    assert.equal((await post(control, { action: "explode", csrf }, deployer)).status, 400);
    assert.equal(await state(), before, "nothing changed");

    const done = await post(control, { action: "abort", csrf, reason: "bad <release>" }, deployer);
    assert.equal(done.status, 303);
    assert.equal(done.headers.get("location"), `/ui/rollouts/${id}`);
    await until("the rollout to be aborted", async () => ((await state()) === "aborted" ? true : undefined));
    const entries = await t.controller.store.audit.list(10, "deployer");
    assert.deepEqual(
      entries.map((entry) => [entry.action, entry.target, entry.detail]),
      [["rollout.abort", id, { reason: "bad <release>", via: "dashboard" }]],
    );
    // The outcome is shown once; a second abort is refused by the engine and says why.
    assert.match(await (await get(`/ui/rollouts/${id}`, deployer)).text(), /abort: done\./);
    await post(control, { action: "abort", csrf }, deployer);
    assert.match(await (await get(`/ui/rollouts/${id}`, deployer)).text(), /E_ROLLOUT_STATE/);
  });

  test("the audit page needs admin, as ferry audit does", async () => {
    assert.equal((await get("/ui/audit", await login(readToken))).status, 403);
    const admin = await login(t.adminToken);
    const response = await get("/ui/audit", admin);
    assert.equal(response.status, 200);
    assert.match(await response.text(), /token\.create/);
  });

  test("malformed paths and topics get clear answers", async () => {
    const cookie = await login(readToken);
    assert.equal((await get("/ui/hosts/no_such..host", cookie)).status, 404);
    assert.equal((await get("/ui/hosts/%E0%A4%A", cookie)).status, 404);
    assert.equal((await get("/ui/hosts/ghost", cookie)).status, 404);
    assert.equal((await get("/ui/rollouts/%3Cscript%3E", cookie)).status, 404);
    assert.equal((await get("/ui/?after=%3Cx%3E", cookie)).status, 404);
    assert.equal((await get("/ui/events?topic=everything", cookie)).status, 400);
    assert.equal((await get(`/ui/events?topic=host:${"a".repeat(300)}`, cookie)).status, 400);
    const put = await fetch(`${t.baseUrl}/ui/`, { method: "PUT", redirect: "manual", headers: { cookie } });
    assert.equal(put.status, 405);
  });

  test("the fleet is paged", async () => {
    const now = Date.now();
    for (let i = 0; i < 130; i++) await t.controller.store.addHost(`node-${String(i).padStart(3, "0")}`, hashToken(`n${i}`), [], now);
    const cookie = await login(readToken);
    const first = await (await get("/ui/", cookie)).text();
    const rows = (text: string): number => text.match(/<tr data-host=/g)?.length ?? 0;
    assert.equal(rows(first), 100);
    const next = /href="(\/ui\/\?after=[^"]+)" rel="next"/.exec(first)?.[1] as string;
    const second = await (await get(next.replaceAll("&amp;", "&"), cookie)).text();
    assert.equal(rows(second), 130 + 2 - 100);
    assert.doesNotMatch(second, /rel="next"/);
  });
});

describe("dashboard limits", () => {
  test("a flood of logins from one address is refused after the limit, good token or not", async () => {
    const limited = await startTestController({ dashboard: { loginsPerMinute: 5 } });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 50; i++) {
        const response = await fetch(`${limited.baseUrl}/ui/login`, {
          method: "POST",
          redirect: "manual",
          body: `token=guess-${i}`,
          headers: { "content-type": "application/x-www-form-urlencoded" },
        });
        statuses.push(response.status);
        await response.arrayBuffer();
      }
      assert.deepEqual(statuses.slice(0, 5), [401, 401, 401, 401, 401]);
      assert.ok(statuses.slice(5).every((status) => status === 429));
      const good = await fetch(`${limited.baseUrl}/ui/login`, {
        method: "POST",
        redirect: "manual",
        body: `token=${limited.adminToken}`,
        headers: { "content-type": "application/x-www-form-urlencoded" },
      });
      assert.equal(good.status, 429);
      assert.ok(Number(good.headers.get("retry-after")) >= 1);
    } finally {
      await limited.stop();
    }
  });

  test("live streams are bounded, and each closed page gives its place back", async () => {
    const limited = await startTestController({ dashboard: { live: { maxClients: 3, coalesceMs: 500, keepAliveMs: 20_000 } } });
    try {
      const response = await fetch(`${limited.baseUrl}/ui/login`, {
        method: "POST",
        redirect: "manual",
        body: `token=${limited.adminToken}`,
        headers: { "content-type": "application/x-www-form-urlencoded" },
      });
      const cookie = (response.headers.get("set-cookie") ?? "").split(";")[0] as string;
      const open = async (): Promise<{ status: number; abort: () => void }> => {
        const controller = new AbortController();
        const stream = await fetch(`${limited.baseUrl}/ui/events?topic=fleet`, { headers: { cookie }, signal: controller.signal });
        return { status: stream.status, abort: () => controller.abort() };
      };
      for (let round = 0; round < 3; round++) {
        const streams = [await open(), await open(), await open()];
        assert.deepEqual(
          streams.map((s) => s.status),
          [200, 200, 200],
        );
        const refused = await open();
        assert.equal(refused.status, 503);
        for (const stream of streams) stream.abort();
        // Once the server has seen the pages go, a new round gets its three places.
        await until("the streams to close", async () => {
          const probe = await open();
          probe.abort();
          return probe.status === 200 ? true : undefined;
        });
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } finally {
      await limited.stop();
    }
  });
});
