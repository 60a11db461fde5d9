// Scoped operator tokens through the real CLI: a push-only build token and a
// staging deploy token as CI would hold them, revocation and rotation (the
// admin token without a restart), and a host token rotated under a running
// agent, which stays connected and comes back with the new token.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Fleet } from "../harness/fleet.js";
import { buildFixtureSystem } from "../harness/fixtures.js";
import { waitFor } from "../harness/exec.js";
import { allOnline, hostStatus } from "../harness/status.js";

interface TokenJson {
  name: string;
  scopes: string[];
  tags: string[];
  environments: string[];
  state: string;
}

interface ErrorJson {
  error: { code: string; message: string };
}

describe("scoped operator tokens through the CLI", { skip: process.getuid?.() !== 0 ? "needs root for network namespaces" : false }, () => {
  let fleet: Fleet;
  let system: string;
  let unpushed: string;
  const file = (name: string): string => join(fleet.dir, name);
  /** The CLI with another token than the fleet's admin one. */
  const as = (tokenFile: string, args: string[]) => fleet.cli([...args, "--token-file", tokenFile]);

  before(async () => {
    fleet = await Fleet.start("tokens");
    await fleet.addHost("web-1", { tags: ["staging"] });
    system = await buildFixtureSystem("web-1", 1);
    unpushed = await buildFixtureSystem("web-1", 2);
    await allOnline(fleet);
  });

  after(async () => {
    await fleet?.close();
  });

  test("a token is only ever written where --token-out says, and a command without it creates nothing", async () => {
    const missing = await fleet.cli(["token", "create", "ci-build", "--scope", "cache:push", "--json"]);
    assert.equal(missing.code, 2);
    assert.equal(missing.json<ErrorJson>().error.code, "E_BAD_ARGUMENT");
    assert.match(missing.json<ErrorJson>().error.message, /ferry token create needs --token-out FILE\|-/);
    const noHost = await fleet.cli(["host", "add", "web-9"]);
    assert.equal(noHost.code, 2);
    assert.match(noHost.stderr, /error E_BAD_ARGUMENT: ferry host add needs --token-out FILE\|-/);
    const listed = (await fleet.mustCli(["token", "list", "--json"])).json<{ tokens: TokenJson[] }>().tokens;
    assert.deepEqual(
      listed.map((token) => token.name),
      ["admin"],
    );
    assert.ok(!(await fleet.mustCli(["host", "list", "--json"])).stdout.includes("web-9"));

    const created = await fleet.cli(["token", "create", "ci-build", "--scope", "cache:push", "--token-out", file("build.token"), "--json"]);
    assert.equal(created.code, 0, created.stderr);
    const secret = readFileSync(file("build.token"), "utf8").trim();
    assert.equal(secret.length, 43);
    assert.equal(statSync(file("build.token")).mode & 0o777, 0o600);
    assert.ok(!created.stdout.includes(secret), "with a file, the secret is not printed");

    const printed = await fleet.cli([
      "token",
      "create",
      "ci-staging",
      "--scope",
      "deploy",
      "--scope",
      "read",
      "--tag",
      "staging",
      "--environment",
      "staging",
      "--expires",
      "90d",
      "--token-out",
      "-",
    ]);
    assert.equal(printed.code, 0, printed.stderr);
    assert.match(printed.stdout, /^[A-Za-z0-9_-]{43}\n$/, "with -, stdout is the secret alone");
    writeFileSync(file("staging.token"), printed.stdout, { mode: 0o600 });

    const tokens = (await fleet.mustCli(["token", "list", "--json"])).json<{ tokens: TokenJson[] }>().tokens;
    const staging = tokens.find((token) => token.name === "ci-staging");
    assert.deepEqual([staging?.scopes, staging?.tags, staging?.environments, staging?.state], [["deploy", "read"], ["staging"], ["staging"], "active"]);
    const table = (await fleet.mustCli(["token", "list"])).stdout;
    assert.match(table, /ci-staging\s+deploy,read\s+tag staging, env staging\s+active/);
  });

  test("the build token pushes and cannot deploy; the staging token rolls out to staging and cannot push", async () => {
    const pushed = await as(file("build.token"), ["cache", "push", system, "--signing-key-file", fleet.key.secretFile]);
    assert.equal(pushed.code, 0, pushed.stderr);
    const deploy = await as(file("build.token"), ["deploy", `web-1=${system}`, "--json"]);
    assert.equal(deploy.code, 1);
    assert.equal(deploy.json<ErrorJson>().error.code, "E_SCOPE");
    assert.match(deploy.json<ErrorJson>().error.message, /lacks the deploy scope/);

    const push = await as(file("staging.token"), ["cache", "push", unpushed, "--signing-key-file", fleet.key.secretFile]);
    assert.notEqual(push.code, 0);
    assert.match(push.stderr, /E_SCOPE|lacks the cache:push scope|403/, push.stderr);
    const direct = await as(file("staging.token"), ["deploy", `web-1=${system}`, "--json"]);
    assert.equal(direct.json<ErrorJson>().error.code, "E_SCOPE");
    const rollout = await as(file("staging.token"), [
      "rollout",
      "start",
      `web-1=${system}`,
      "--environment",
      "staging",
      "--wait",
      "--timeout",
      "120",
      "--json",
    ]);
    assert.equal(rollout.code, 0, rollout.stdout + rollout.stderr);
    assert.equal(rollout.json<{ rollout: { requestedBy: string } }>().rollout.requestedBy, "ci-staging");
    assert.equal((await hostStatus(fleet, "web-1")).currentSystem, system);
  });

  test("revoke and rotate: the old secret is refused at once", async () => {
    const rotated = await fleet.cli(["token", "rotate", "ci-build", "--token-out", file("build-2.token")]);
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.equal((await as(file("build.token"), ["status", "--json"])).json<ErrorJson>().error.code, "E_AUTH");
    const info = await as(file("build-2.token"), ["status", "--json"]);
    assert.equal(info.json<ErrorJson>().error.code, "E_SCOPE", "the rotated token keeps its scopes: push only");

    const revoked = await fleet.cli(["token", "revoke", "ci-build"]);
    assert.equal(revoked.code, 0, revoked.stderr);
    const refused = await as(file("build-2.token"), ["cache", "push", system, "--signing-key-file", fleet.key.secretFile]);
    assert.notEqual(refused.code, 0);
    assert.ok(!(await fleet.mustCli(["token", "list"])).stdout.includes("ci-build"));
    assert.match((await fleet.mustCli(["token", "list", "--all"])).stdout, /ci-build\s+cache:push\s+-\s+revoked/);
  });

  test("ferry token rotate admin: admin.token holds the new secret, the old one is refused, no restart", async () => {
    const old = fleet.readAdminToken();
    writeFileSync(file("old-admin.token"), `${old}\n`);
    const rotated = await fleet.cli(["token", "rotate", "admin", "--token-out", file("new-admin.token")]);
    assert.equal(rotated.code, 0, rotated.stderr);
    const fresh = readFileSync(file("new-admin.token"), "utf8").trim();
    assert.equal(fleet.readAdminToken(), fresh);
    assert.equal((await as(file("old-admin.token"), ["status", "--json"])).json<ErrorJson>().error.code, "E_AUTH");
    await fleet.mustCli(["status"]);
  });

  test("ferry host rotate-token: the agent stays connected, and after a reconnect only the new token gets in", async () => {
    const rotated = await fleet.cli(["host", "rotate-token", "web-1", "--token-out", file("web-1.token"), "--json"]);
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.equal(rotated.json<{ online: boolean }>().online, true);
    const newToken = readFileSync(file("web-1.token"), "utf8").trim();
    // Several heartbeats later it is still the same, connected agent.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    assert.equal((await hostStatus(fleet, "web-1")).online, true);

    // The link drops (controller restart) before the new token reached the host: the old one is refused.
    const logBefore = fleet.controller.logText().length;
    await fleet.controller.stop();
    await fleet.controller.start();
    await waitFor("the old agent token refused", () => fleet.controller.logText().slice(logBefore).includes('"reason":"wrong token"') || undefined, 20_000);
    assert.equal((await hostStatus(fleet, "web-1")).online, false);

    // The operator puts the new token in the agent's tokenFile; it reads it at its next attempt.
    writeFileSync(join(fleet.host("web-1").dir, "token"), `${newToken}\n`, { mode: 0o600 });
    await waitFor("web-1 back online with its new token", async () => (await hostStatus(fleet, "web-1")).online || undefined, 30_000);
  });

  test("ferry audit shows which token did what", async () => {
    const { entries } = (await fleet.mustCli(["audit", "--limit", "200", "--json"])).json<{
      entries: { actor: string; action: string; target: string; at: string }[];
    }>();
    const did = (actor: string, action: string): boolean => entries.some((entry) => entry.actor === actor && entry.action === action);
    assert.ok(did("admin", "host.add"));
    assert.ok(did("admin", "token.create"));
    assert.ok(did("ci-build", "cache.push"));
    assert.ok(did("ci-staging", "rollout.start"));
    assert.ok(did("admin", "token.rotate"));
    assert.ok(did("admin", "token.revoke"));
    assert.ok(did("admin", "host.rotate-token"));
    const own = (await fleet.mustCli(["audit", "--token", "ci-staging", "--json"])).json<{ entries: { actor: string }[] }>().entries;
    assert.deepEqual([...new Set(own.map((entry) => entry.actor))], ["ci-staging"]);
    assert.match((await fleet.mustCli(["audit"])).stdout, /^WHEN\s+TOKEN\s+ACTION\s+TARGET\n/);
  });
});
