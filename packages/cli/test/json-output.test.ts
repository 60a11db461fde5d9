// Every verb of the table runs once with --json against a real controller and
// real Nix, and prints one JSON document on stdout: its result, or its error.
// Verbs that would change this machine (agent gc, apply-bundle, the agent
// itself) run only as far as a refused input, still in JSON.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildFixtureSystem } from "../../../test/harness/fixtures.js";
import { VERBS, type VerbId } from "../src/spec/index.js";
import { TestController, cleanEnv, ferry } from "./cli-process.js";

type Json = Record<string, unknown>;
interface Step {
  verb: VerbId;
  args: () => string[];
  /** An error code the verb must answer with, or a check of its result. */
  expect: string | ((result: Json) => void);
}

const hasNix = spawnSync("nix-build", ["--version"]).status === 0;

describe("--json on every verb", { skip: hasNix ? false : "needs Nix (nix-build)" }, () => {
  const controller = new TestController();
  let env: Record<string, string>;
  let system = "";
  let publicKey = "";
  let rolloutId = "";
  let windowId = "";
  const file = (name: string) => join(controller.dir, name);

  before(async () => {
    await controller.start();
    env = cleanEnv();
    system = await buildFixtureSystem("json-1", 1);
    writeFileSync(file("hosts.json"), JSON.stringify({ hosts: { "web-1": system } }));
    writeFileSync(file("web-1.token"), "x\n");
    writeFileSync(
      file("agent.json"),
      JSON.stringify({
        controllerUrl: `ws://127.0.0.1:${controller.httpPort}/agent`,
        hostName: "web-1",
        tokenFile: file("web-1.token"),
        substituters: [`http://127.0.0.1:${controller.httpPort}/cache`],
        trustedPublicKeys: ["ci-1:AAAA"],
      }),
    );
  });

  after(async () => {
    await controller.stop();
  });

  const steps: Step[] = [
    { verb: "version", args: () => ["version"], expect: (r) => assert.equal(typeof r["version"], "string") },
    { verb: "help", args: () => ["help"], expect: (r) => assert.ok(Array.isArray(r["verbs"])) },
    { verb: "completion", args: () => ["completion", "fish"], expect: (r) => assert.equal(r["shell"], "fish") },
    {
      verb: "context set",
      args: () => ["context", "set", "test", "--controller", controller.address, "--token-file", controller.tokenFile],
      expect: (r) => assert.equal(r["current"], true),
    },
    { verb: "context list", args: () => ["context", "list"], expect: (r) => assert.equal((r["contexts"] as Json[]).length, 1) },
    { verb: "context use", args: () => ["context", "use", "test"], expect: (r) => assert.equal(r["currentContext"], "test") },
    {
      verb: "context show",
      args: () => ["context", "show"],
      expect: (r) => assert.deepEqual(r["controller"], { value: controller.address, from: 'context "test"' }),
    },
    {
      verb: "keys generate",
      args: () => ["keys", "generate", "--name", "ci-1", "--out", file("keys")],
      expect: (r) => {
        publicKey = r["publicKey"] as string;
        assert.match(publicKey, /^ci-1:/);
      },
    },
    // Operator verbs from here on reach the controller through the context.
    {
      verb: "host add",
      args: () => ["host", "add", "web-1", "--tag", "web", "--token-out", file("web-1.token")],
      expect: (r) => assert.equal((r["host"] as Json)["name"], "web-1"),
    },
    { verb: "host list", args: () => ["host", "list"], expect: (r) => assert.equal((r["hosts"] as Json[]).length, 1) },
    {
      verb: "host rotate-token",
      args: () => ["host", "rotate-token", "web-1", "--token-out", file("web-1.rotated.token")],
      expect: (r) => assert.equal(typeof r, "object"),
    },
    {
      verb: "token create",
      args: () => ["token", "create", "reader", "--scope", "read", "--token-out", file("reader.token")],
      expect: (r) => assert.equal((r["token"] as Json)["name"], "reader"),
    },
    { verb: "token list", args: () => ["token", "list"], expect: (r) => assert.ok((r["tokens"] as Json[]).some((t) => t["name"] === "reader")) },
    {
      verb: "token rotate",
      args: () => ["token", "rotate", "reader", "--token-out", file("reader.rotated.token")],
      expect: (r) => assert.equal((r["token"] as Json)["name"], "reader"),
    },
    { verb: "token revoke", args: () => ["token", "revoke", "reader"], expect: (r) => assert.equal((r["token"] as Json)["name"], "reader") },
    { verb: "audit", args: () => ["audit"], expect: (r) => assert.ok((r["entries"] as Json[]).length > 0) },
    {
      verb: "intent sign",
      args: () => ["intent", "sign", `web-1=${system}`, "--key-file", file("keys/ci-1.secret"), "-o", file("intents.json")],
      expect: (r) => assert.equal((r["intents"] as Json[]).length, 1),
    },
    { verb: "intent show", args: () => ["intent", "show", file("intents.json")], expect: (r) => assert.equal((r["intents"] as Json[]).length, 1) },
    {
      verb: "cache push",
      args: () => ["cache", "push", system, "--signing-key-file", file("keys/ci-1.secret")],
      expect: (r) => assert.equal(r["signed"], true),
    },
    { verb: "deploy", args: () => ["deploy", `web-1=${system}`], expect: (r) => assert.match(r["deploymentId"] as string, /^d-/) },
    // web-1 wants it now: refused, nothing removed.
    { verb: "cache rm", args: () => ["cache", "rm", system], expect: "E_CACHE_PATH_IN_USE" },
    // web-1's desired system is a root: a dry run with no minimum age still keeps it.
    {
      verb: "cache gc",
      args: () => ["cache", "gc", "--dry-run", "--min-age", "0"],
      expect: (r) => assert.ok(!(r["deleted"] as string[]).includes(system) && r["dryRun"] === true),
    },
    { verb: "status", args: () => ["status", "web-1"], expect: (r) => assert.equal((r["hosts"] as Json[])[0]?.["desiredSystem"], system) },
    {
      verb: "history",
      args: () => ["history", "web-1"],
      expect: (r) => assert.deepEqual(((r["entries"] as Json[])[0] as Json)["storePath"], system),
    },
    // web-1 never ran anything.
    { verb: "rollback", args: () => ["rollback", "web-1"], expect: "E_NO_PREVIOUS_SYSTEM" },
    { verb: "logs", args: () => ["logs", "web-1"], expect: (r) => assert.deepEqual(r["lines"], []) },
    { verb: "dry-activate", args: () => ["dry-activate", `web-1=${system}`, "--timeout", "5"], expect: "E_HOST_OFFLINE" },
    {
      verb: "rollout start",
      args: () => ["rollout", "start", `web-1=${system}`, "--gate"],
      expect: (r) => {
        rolloutId = (r["rollout"] as Json)["id"] as string;
        assert.match(rolloutId, /^r-/);
      },
    },
    { verb: "rollout status", args: () => ["rollout", "status", rolloutId], expect: (r) => assert.equal((r["rollout"] as Json)["id"], rolloutId) },
    { verb: "rollout list", args: () => ["rollout", "list", "--limit", "5"], expect: (r) => assert.equal((r["rollouts"] as Json[]).length, 1) },
    { verb: "rollout pause", args: () => ["rollout", "pause", rolloutId], expect: (r) => assert.equal((r["rollout"] as Json)["id"], rolloutId) },
    { verb: "rollout resume", args: () => ["rollout", "resume", rolloutId], expect: (r) => assert.equal((r["rollout"] as Json)["id"], rolloutId) },
    { verb: "rollout promote", args: () => ["rollout", "promote", rolloutId], expect: "E_ROLLOUT_STATE" },
    {
      verb: "rollout abort",
      args: () => ["rollout", "abort", rolloutId, "--reason", "test"],
      expect: (r) => assert.equal((r["rollout"] as Json)["id"], rolloutId),
    },
    {
      verb: "window add",
      args: () => ["window", "add", "--tag", "web", "--cron", "0 2 * * *", "--duration", "2h"],
      expect: (r) => {
        windowId = (r["window"] as Json)["id"] as string;
        assert.match(windowId, /^w-/);
      },
    },
    { verb: "window list", args: () => ["window", "list"], expect: (r) => assert.equal((r["windows"] as Json[]).length, 1) },
    { verb: "window remove", args: () => ["window", "remove", windowId], expect: (r) => assert.equal(r["removed"], windowId) },
    {
      verb: "bundle create",
      args: () => ["bundle", "create", "--manifest", file("hosts.json"), "-o", file("site.ferry"), "--signing-key-file", file("keys/ci-1.secret")],
      expect: (r) => assert.ok((r["paths"] as number) > 0),
    },
    { verb: "bundle verify", args: () => ["bundle", "verify", file("site.ferry"), "--trusted-key", publicKey], expect: (r) => assert.equal(r["valid"], true) },
    { verb: "bundle inspect", args: () => ["bundle", "inspect", file("site.ferry")], expect: (r) => assert.equal(r["verified"], false) },
    {
      verb: "bundle sign-cache",
      // The controller's cache directory is a file cache holding the pushed closure.
      args: () => [
        "bundle",
        "sign-cache",
        join(controller.dataDir, "cache"),
        "--manifest",
        file("hosts.json"),
        "-o",
        file("cache.manifest"),
        "--signing-key-file",
        file("keys/ci-1.secret"),
      ],
      expect: (r) => assert.ok((r["paths"] as number) > 0),
    },
    // The test controller trusts no bundle key: the import is refused, in JSON.
    { verb: "bundle import", args: () => ["bundle", "import", file("site.ferry"), "--trusted-key", publicKey], expect: "E_BUNDLE_SIGNATURE" },
    { verb: "site inventory", args: () => ["site", "inventory", "-o", file("inventory.json")], expect: (r) => assert.ok((r["paths"] as number) > 0) },
    { verb: "agent schema", args: () => ["agent", "schema"], expect: (r) => assert.equal(r["type"], "object") },
    {
      verb: "agent check-config",
      args: () => ["agent", "check-config", "--config", file("agent.json")],
      expect: (r) => assert.equal((r["config"] as Json)["hostName"], "web-1"),
    },
    { verb: "agent gc", args: () => ["agent", "gc", "--config", file("absent.json")], expect: "E_FILE_NOT_FOUND" },
    { verb: "agent apply-bundle", args: () => ["agent", "apply-bundle", file("site.ferry"), "--config", file("absent.json")], expect: "E_FILE_NOT_FOUND" },
    { verb: "agent", args: () => ["agent", "--config", file("absent.json")], expect: "E_FILE_NOT_FOUND" },
    // Refused before it would mount anything.
    { verb: "dev host", args: () => ["dev", "host", "--config", file("absent.json")], expect: "E_FILE_NOT_FOUND" },
    {
      verb: "controller",
      args: () => ["controller", "--data-dir", file("second"), "--listen", `127.0.0.1:${controller.httpPort}`, "--grpc-listen", "127.0.0.1:0"],
      expect: "E_ADDRESS_IN_USE",
    },
    { verb: "host remove", args: () => ["host", "remove", "web-1"], expect: (r) => assert.equal(r["removed"], "web-1") },
    { verb: "context remove", args: () => ["context", "remove", "test"], expect: (r) => assert.equal(r["removed"], "test") },
  ];

  test("the steps cover every verb of the table", () => {
    assert.deepEqual(steps.map((step) => step.verb).sort(), (Object.keys(VERBS) as VerbId[]).sort());
  });

  test("each verb prints one JSON document, result or error", async () => {
    for (const step of steps) {
      const args = [...step.args(), "--json"];
      const result = await ferry(args, env, { timeoutMs: 60_000 });
      const where = `ferry ${args.join(" ")} (exit ${result.code})\nstderr: ${result.stderr}`;
      const json = result.json<Json>();
      if (typeof step.expect === "string") {
        assert.equal(result.code, 1, where);
        const error = json["error"] as Json;
        assert.equal(error["code"], step.expect, `${where}\n${result.stdout}`);
        assert.equal(typeof error["message"], "string");
        assert.equal(typeof error["hint"], "string");
      } else {
        assert.equal(result.code, 0, where);
        step.expect(json);
      }
    }
  });
});
