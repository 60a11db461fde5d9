import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import WebSocket from "ws";
import { SCOPES, hashToken, toNixBase32 } from "@ferry/core";
import { HostPhase, RolloutAction, decodeControllerFrame, encodeAgentFrame, type ControllerBody } from "@ferry/protocol";
import { startTestController, type TestController } from "./controller-fixture.js";
import { allMethods, callMethod, createToken } from "./operator-calls.js";

// Each scope allows exactly its verbs: every method of every gRPC service and
// every HTTP endpoint, called with a token of each scope (and none, and a
// wrong one). A request that passes the scope check is chosen so that it then
// fails harmlessly, with a known code, changing nothing.

const SYS = `/nix/store/${"a".repeat(32)}-system`;

/** What each method requires: written out here, not read from the controller's own table. */
const EXPECTED: Record<string, { needs: string; request: Record<string, unknown>; admitted: string }> = {
  GetInfo: { needs: "any", request: {}, admitted: "ok" },
  AddHost: { needs: "hosts:admin", request: { name: "Not A Name!" }, admitted: "E_BAD_HOST_NAME" },
  RemoveHost: { needs: "hosts:admin", request: { name: "ghost" }, admitted: "E_UNKNOWN_HOST" },
  ListHosts: { needs: "read", request: {}, admitted: "ok" },
  Deploy: { needs: "deploy", request: { targets: [{ hostName: "ghost", storePath: SYS }] }, admitted: "E_UNKNOWN_HOST" },
  WatchHosts: { needs: "read", request: { names: ["ghost"] }, admitted: "E_UNKNOWN_HOST" },
  DryActivate: { needs: "deploy", request: { hostName: "ghost", storePath: SYS }, admitted: "E_UNKNOWN_HOST" },
  StartRollout: { needs: "deploy", request: { targets: [{ hostName: "ghost", storePath: SYS }] }, admitted: "E_UNKNOWN_HOST" },
  GetRollout: { needs: "read", request: { id: "r-none" }, admitted: "E_UNKNOWN_ROLLOUT" },
  ListRollouts: { needs: "read", request: {}, admitted: "ok" },
  ControlRollout: { needs: "deploy", request: { id: "r-none", action: RolloutAction.ROLLOUT_ACTION_PAUSE }, admitted: "E_UNKNOWN_ROLLOUT" },
  AddMaintenanceWindow: { needs: "hosts:admin", request: {}, admitted: "E_BAD_ARGUMENT" },
  ListMaintenanceWindows: { needs: "read", request: {}, admitted: "ok" },
  RemoveMaintenanceWindow: { needs: "hosts:admin", request: { id: "w-none" }, admitted: "E_UNKNOWN_WINDOW" },
  RemoveCachePaths: { needs: "admin", request: { storePaths: [SYS] }, admitted: "ok" },
  CollectCacheGarbage: { needs: "admin", request: { dryRun: true }, admitted: "ok" },
  ListHistory: { needs: "read", request: {}, admitted: "ok" },
  Rollback: { needs: "deploy", request: { hostNames: ["ghost"] }, admitted: "E_UNKNOWN_HOST" },
  StreamLogs: { needs: "read", request: { hostName: "ghost" }, admitted: "E_UNKNOWN_HOST" },
  PublishBundle: { needs: "bundles:import", request: {}, admitted: "E_BAD_ARGUMENT" },
  Inventory: { needs: "read", request: {}, admitted: "ok" },
  CreateToken: { needs: "admin", request: { name: "never-made", scopes: [] }, admitted: "E_BAD_ARGUMENT" },
  ListTokens: { needs: "admin", request: {}, admitted: "ok" },
  RevokeToken: { needs: "admin", request: { name: "ghost" }, admitted: "E_UNKNOWN_TOKEN" },
  RotateToken: { needs: "admin", request: { name: "ghost" }, admitted: "E_UNKNOWN_TOKEN" },
  RotateHostToken: { needs: "hosts:admin", request: { hostName: "ghost" }, admitted: "E_UNKNOWN_HOST" },
  ListAudit: { needs: "admin", request: {}, admitted: "ok" },
};

let t: TestController;
let address: string;
/** Token name → secret: one token per scope, the built-in admin, and two that authenticate nobody. */
const tokens = new Map<string, string | undefined>();

before(async () => {
  t = await startTestController();
  address = `127.0.0.1:${t.controller.grpcPort}`;
  for (const scope of SCOPES) tokens.set(scope, await createToken(address, t.adminToken, `only-${scope.replace(":", "-")}`, [scope]));
  tokens.set("built-in admin", t.adminToken);
  tokens.set("no token", undefined);
  tokens.set("wrong token", "x".repeat(43));
  await t.controller.store.addHost("web-1", hashToken("web-1-agent-token-0123456789abcdef0123456789"), ["web"], Date.now());
});
after(async () => {
  await t?.stop();
});

/** What a token of `scope` should get: admitted, refused for its scope, or not authenticated. */
function expectation(holder: string, needs: string): "admitted" | "E_SCOPE" | "E_AUTH" {
  if (holder === "no token" || holder === "wrong token") return "E_AUTH";
  if (holder === "built-in admin" || holder === "admin" || needs === "any" || needs === holder) return "admitted";
  return "E_SCOPE";
}

describe("every gRPC method × every scope", () => {
  test("the table names every method of every service, and nothing else", () => {
    assert.deepEqual([...allMethods().keys()].sort(), Object.keys(EXPECTED).sort());
  });

  for (const [method, { needs, request, admitted }] of Object.entries(EXPECTED)) {
    test(`${method} needs ${needs}`, async () => {
      for (const [holder, secret] of tokens) {
        const result = await callMethod(address, method, request, secret);
        const expected = expectation(holder, needs);
        if (expected === "admitted") {
          assert.equal(result.code, admitted, `${method} with ${holder}: ${result.message}`);
        } else {
          assert.equal(result.code, expected, `${method} with ${holder}: ${result.message}`);
          if (expected === "E_SCOPE")
            assert.match(result.message, new RegExp(`lacks the ${needs} scope`), `${method} with ${holder} must name the missing scope`);
        }
      }
    });
  }
});

const basic = (secret: string | undefined): Record<string, string> =>
  secret === undefined ? {} : { authorization: `Basic ${Buffer.from(`ferry:${secret}`).toString("base64")}` };

describe("every HTTP endpoint × every scope", () => {
  test("GET /cache/* is public", async () => {
    for (const [holder, secret] of tokens) {
      const response = await fetch(`${t.baseUrl}/cache/nix-cache-info`, { headers: basic(secret), signal: AbortSignal.timeout(5000) });
      assert.equal(response.status, 200, holder);
    }
  });

  test("PUT /cache/* needs cache:push", async () => {
    for (const [holder, secret] of tokens) {
      const bytes = randomBytes(64);
      const nar = `nar/${toNixBase32(createHash("sha256").update(bytes).digest())}.nar`;
      const response = await fetch(`${t.baseUrl}/cache/${nar}`, { method: "PUT", body: bytes, headers: basic(secret), signal: AbortSignal.timeout(5000) });
      const text = await response.text();
      const expected = expectation(holder, "cache:push");
      if (expected === "admitted") assert.equal(response.status, 201, `${holder}: ${text}`);
      else if (expected === "E_SCOPE") {
        assert.equal(response.status, 403, holder);
        assert.match(text, /^E_SCOPE: .*lacks the cache:push scope/, holder);
      } else {
        assert.equal(response.status, 401, holder);
        assert.match(text, /^E_AUTH/, holder);
      }
      const stored = await fetch(`${t.baseUrl}/cache/${nar}`, { method: "HEAD", signal: AbortSignal.timeout(5000) });
      assert.equal(stored.status, expected === "admitted" ? 200 : 404, `${holder}: a refused upload stores nothing`);
    }
  });

  test("PUT /bundles/upload needs bundles:import", async () => {
    for (const [holder, secret] of tokens) {
      const response = await fetch(`${t.baseUrl}/bundles/upload`, {
        method: "PUT",
        body: "this is not a bundle",
        headers: basic(secret),
        signal: AbortSignal.timeout(5000),
      });
      const { error } = (await response.json()) as { error: { code: string; message: string } };
      const expected = expectation(holder, "bundles:import");
      if (expected === "admitted") assert.equal(error.code, "E_BUNDLE_TRUNCATED", `${holder}: ${error.message}`);
      else {
        assert.equal(error.code, expected, `${holder}: ${error.message}`);
        assert.equal(response.status, expected === "E_SCOPE" ? 403 : 401, holder);
      }
    }
  });

  test("/agent takes agent tokens only: no operator token, not even admin, speaks for a host", async () => {
    for (const [holder, secret] of tokens) {
      const ws = new WebSocket(`ws://127.0.0.1:${t.controller.httpPort}/agent`, { perMessageDeflate: false });
      ws.on("error", () => undefined);
      const frames: ControllerBody[] = [];
      ws.on("message", (data) => frames.push(decodeControllerFrame(Buffer.from(data as Buffer)).body));
      const closed = new Promise<number>((resolve) => ws.on("close", (code) => resolve(code)));
      await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
      ws.send(
        encodeAgentFrame({
          $case: "hello",
          value: { hostName: "web-1", token: secret ?? "", currentSystem: "", agentVersion: "test", appliedSerial: 0, phase: HostPhase.HOST_PHASE_IDLE },
        }),
      );
      assert.equal(await closed, 4001, holder);
      assert.deepEqual(
        frames.map((frame) => (frame.$case === "refusal" ? frame.value.code : frame.$case)),
        ["E_AUTH"],
        holder,
      );
    }
  });
});
