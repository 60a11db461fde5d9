// Fleet rollouts over eight simulated hosts and real Nix: waves, a failing
// canary, abort with rollback, a controller killed mid-wave, a maintenance
// window that opens during the test, and environments.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Fleet } from "../harness/fleet.js";
import { buildFixtureSystem, type FixtureBehaviour } from "../harness/fixtures.js";
import { waitFor } from "../harness/exec.js";
import { allOnline, hostStatus } from "../harness/status.js";

const HEALTH_CHECK = { type: "command", argv: ["/bin/sh", "-c", 'test "$(cat /run/fixture-health 2>/dev/null || echo ok)" = ok'], timeout: 5 };
const HOSTS = Array.from({ length: 8 }, (_, i) => `node-${i + 1}`);

interface RolloutJson {
  id: string;
  state: string;
  reason: string;
  outcome: string;
  skipped: { host: string; code: string; reason: string }[];
  waveCount: number;
  currentWave: number;
  hosts: { name: string; wave: number; state: string; errorCode: string }[];
}

describe("fleet rollouts", { skip: process.getuid?.() !== 0 ? "needs root for network namespaces" : false }, () => {
  let fleet: Fleet;
  let generation = 0;

  /** Builds a new generation for every host (some misbehaving), pushes it and writes a CI-style manifest. */
  async function release(behaviours: Record<string, FixtureBehaviour> = {}): Promise<{ file: string; paths: Record<string, string> }> {
    generation += 1;
    const paths: Record<string, string> = {};
    for (const host of HOSTS) paths[host] = await buildFixtureSystem(host, generation, behaviours[host] ?? "ok");
    await fleet.push(Object.values(paths));
    const file = join(fleet.dir, `manifest-${generation}.json`);
    writeFileSync(file, JSON.stringify({ hosts: paths }));
    return { file, paths };
  }

  async function rollout(id: string): Promise<RolloutJson> {
    return (await fleet.mustCli(["rollout", "status", id, "--json"])).json<{ rollout: RolloutJson }>().rollout;
  }

  /** A new generation for just these hosts, pushed; the other hosts are left alone. */
  async function build(hosts: readonly string[]): Promise<Record<string, string>> {
    generation += 1;
    const paths: Record<string, string> = {};
    for (const host of hosts) paths[host] = await buildFixtureSystem(host, generation);
    await fleet.push(Object.values(paths));
    return paths;
  }

  /** Power-cycles a host into its boot default and waits until its agent reports it running `path`. */
  async function rebootInto(host: string, path: string): Promise<void> {
    await fleet.host(host).reboot();
    fleet.host(host).startAgent();
    await waitFor(
      `${host} back, running the new system`,
      async () => {
        const status = await hostStatus(fleet, host);
        return status.online && status.phase === "active" && status.currentSystem === path ? status : undefined;
      },
      60_000,
      250,
    );
  }

  function testCalls(host: string, path: string): number {
    return fleet
      .host(host)
      .switchCalls()
      .filter(([action, system]) => action === "test" && system === path).length;
  }

  before(async () => {
    fleet = await Fleet.start("rollout");
    for (const [index, host] of HOSTS.entries()) {
      const tags = ["web", index < 2 ? "staging" : "production", ...(host === "node-8" ? ["late"] : [])];
      await fleet.addHost(host, { tags, agentConfig: { confirmTimeout: 8, healthChecks: [HEALTH_CHECK] } });
    }
    await allOnline(fleet);
  });

  after(async () => {
    await fleet?.close();
  });

  test("a healthy rollout: prefetch everywhere, then a canary and two batches", async () => {
    const { file, paths } = await release();
    const result = await fleet.cli([
      "rollout",
      "start",
      "--manifest",
      file,
      "--tag",
      "web",
      "--canary",
      "1",
      "--batch",
      "50%",
      "--max-unavailable",
      "4",
      "--wait",
      "--timeout",
      "180",
      "--json",
    ]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const done = result.json<{ rollout: RolloutJson }>().rollout;
    assert.equal(done.state, "completed");
    assert.equal(done.waveCount, 3);
    assert.deepEqual(
      [1, 2, 3].map((wave) => done.hosts.filter((host) => host.wave === wave).length),
      [1, 4, 3],
    );
    for (const host of HOSTS) {
      assert.equal(fleet.host(host).currentSystem(), paths[host], host);
      assert.equal(testCalls(host, paths[host] as string), 1, `${host} activated exactly once`);
      const log = fleet.host(host).agentLogText();
      assert.ok(log.indexOf("closure prefetched") < log.lastIndexOf("new desired system"), `${host} prefetched before activating`);
    }
    const list = await fleet.mustCli(["rollout", "list"]);
    assert.match(list.stdout, new RegExp(`${done.id}\\s+completed`));
  });

  test("a canary failing its health check aborts, and the rest of the fleet is never activated", async () => {
    const before = new Map(HOSTS.map((host) => [host, fleet.host(host).currentSystem()]));
    const { file, paths } = await release({ "node-1": "fail-health" });
    const result = await fleet.cli([
      "rollout",
      "start",
      "--manifest",
      file,
      "--canary",
      "1",
      "--batch",
      "4",
      "--max-unavailable",
      "4",
      "--wait",
      "--timeout",
      "180",
      "--json",
    ]);
    assert.equal(result.code, 1);
    const done = result.json<{ rollout: RolloutJson }>().rollout;
    assert.equal(done.state, "aborted");
    assert.match(done.reason, /canary failed: node-1 E_HEALTH_CHECK_FAILED/);
    assert.equal(done.hosts.find((host) => host.name === "node-1")?.state, "rolled-back");
    for (const host of HOSTS) {
      assert.equal(fleet.host(host).currentSystem(), before.get(host), `${host} still runs the previous release`);
      if (host !== "node-1") assert.equal(testCalls(host, paths[host] as string), 0, `${host} never activated`);
    }
  });

  test("abort --rollback-on-abort reverts the hosts already switched", async () => {
    const before = new Map(HOSTS.map((host) => [host, fleet.host(host).currentSystem()]));
    const { file, paths } = await release();
    const started = await fleet.mustCli([
      "rollout",
      "start",
      "--manifest",
      file,
      "--canary",
      "2",
      "--batch",
      "3",
      "--max-unavailable",
      "3",
      "--gate",
      "--rollback-on-abort",
      "--json",
    ]);
    const id = started.json<{ rollout: RolloutJson }>().rollout.id;
    await waitFor("the gate after the canary wave", async () => (await rollout(id)).state === "waiting-gate" || undefined, 90_000, 500);
    assert.equal(fleet.host("node-1").currentSystem(), paths["node-1"]);
    const aborted = await fleet.cli(["rollout", "abort", id, "--reason", "bad metrics on the canary"]);
    assert.equal(aborted.code, 0, aborted.stderr);
    const final = await waitFor(
      "reverted",
      async () => {
        const r = await rollout(id);
        return r.hosts.filter((host) => host.wave === 1).every((host) => host.state === "reverted") ? r : undefined;
      },
      90_000,
      500,
    );
    assert.equal(final.state, "aborted");
    assert.equal(final.reason, "bad metrics on the canary");
    for (const host of HOSTS) assert.equal(fleet.host(host).currentSystem(), before.get(host), `${host} back on the previous release`);
    assert.equal(testCalls("node-5", paths["node-5"] as string), 0);
  });

  test("a controller killed in the middle of wave 2 resumes the rollout without activating any host twice", async () => {
    const { file, paths } = await release(Object.fromEntries(HOSTS.map((host) => [host, "slow" as const])));
    const started = await fleet.mustCli(["rollout", "start", "--manifest", file, "--canary", "1", "--batch", "2", "--max-unavailable", "2", "--json"]);
    const id = started.json<{ rollout: RolloutJson }>().rollout.id;
    await waitFor(
      "wave 2 activating",
      async () => {
        const r = await rollout(id);
        return r.currentWave === 2 && r.hosts.some((host) => host.wave === 2 && host.state === "activating") ? r : undefined;
      },
      90_000,
      200,
    );
    await fleet.controller.stop("SIGKILL");
    await new Promise((resolve) => setTimeout(resolve, 2000));
    await fleet.controller.start();
    const final = await waitFor(
      "rollout completed",
      async () => {
        const r = await rollout(id);
        return r.state === "completed" || r.state === "aborted" ? r : undefined;
      },
      150_000,
      1000,
    );
    assert.equal(final.state, "completed", final.reason);
    for (const host of HOSTS) {
      assert.equal(fleet.host(host).currentSystem(), paths[host], host);
      assert.equal(testCalls(host, paths[host] as string), 1, `${host} activated exactly once`);
    }
  });

  test("a host in a maintenance window waits for it to open, and prefetches meanwhile", async () => {
    const opensAt = new Date(Date.now() + 20_000);
    const cron = `${opensAt.getUTCSeconds()} ${opensAt.getUTCMinutes()} ${opensAt.getUTCHours()} * * *`;
    const added = await fleet.mustCli(["window", "add", "--tag", "late", "--cron", cron, "--duration", "10m", "--timezone", "UTC", "--json"]);
    const windowId = added.json<{ window: { id: string } }>().window.id;
    try {
      const { file, paths } = await release();
      const started = await fleet.mustCli([
        "rollout",
        "start",
        "--manifest",
        file,
        "--hosts",
        "node-7,node-8",
        "--batch",
        "2",
        "--max-unavailable",
        "2",
        "--json",
      ]);
      const id = started.json<{ rollout: RolloutJson }>().rollout.id;
      await waitFor(
        "node-8 waiting for its window",
        async () => (await rollout(id)).hosts.find((host) => host.name === "node-8")?.state === "waiting-window" || undefined,
        60_000,
        250,
      );
      assert.ok(Date.now() < opensAt.getTime(), "the window was still closed");
      assert.equal((await fleet.host("node-8").run(["nix-store", "--check-validity", paths["node-8"] as string])).code, 0, "prefetched while waiting");
      const final = await waitFor(
        "rollout completed",
        async () => {
          const r = await rollout(id);
          return r.state === "completed" ? r : undefined;
        },
        90_000,
        500,
      );
      assert.ok(final.hosts.every((host) => host.state === "confirmed"));
      // The window opens on the whole second the cron names.
      assert.ok(Date.now() >= Math.floor(opensAt.getTime() / 1000) * 1000, "activated only once the window opened");
      assert.equal(fleet.host("node-8").currentSystem(), paths["node-8"]);
    } finally {
      await fleet.mustCli(["window", "remove", windowId]);
    }
  });

  test("--after staging: production waits until the same manifest completed on staging", async () => {
    const { file, paths } = await release();
    const early = await fleet.cli(["rollout", "start", "--manifest", file, "--tag", "production", "--after", "staging", "--json"]);
    assert.equal(early.code, 1);
    assert.equal(early.json<{ error: { code: string } }>().error.code, "E_AFTER_NOT_SATISFIED");
    const staging = await fleet.cli([
      "rollout",
      "start",
      "--manifest",
      file,
      "--tag",
      "staging",
      "--batch",
      "2",
      "--max-unavailable",
      "2",
      "--wait",
      "--timeout",
      "120",
    ]);
    assert.equal(staging.code, 0, staging.stderr);
    const production = await fleet.cli([
      "rollout",
      "start",
      "--manifest",
      file,
      "--tag",
      "production",
      "--after",
      "staging",
      "--batch",
      "50%",
      "--max-unavailable",
      "3",
      "--wait",
      "--timeout",
      "180",
    ]);
    assert.equal(production.code, 0, production.stderr);
    for (const host of HOSTS) assert.equal(fleet.host(host).currentSystem(), paths[host], host);
  });

  test("deploy --mode boot does not stick, and a boot-mode canary counts only once it runs the new system", async () => {
    const hosts = ["node-1", "node-2"];
    const booted = await build(["node-1"]);
    const boot = await fleet.cli(["deploy", `node-1=${booted["node-1"]}`, "--mode", "boot", "--wait", "--timeout", "60"]);
    assert.equal(boot.code, 0, boot.stderr);
    await rebootInto("node-1", booted["node-1"] as string);

    // A rollout naming no mode runs in each host's own strategy (trial: `test` first), not in the boot mode of the last deploy.
    const plain = await build(hosts);
    const targets = (paths: Record<string, string>) => hosts.map((host) => `${host}=${paths[host]}`);
    const first = await fleet.cli(["rollout", "start", ...targets(plain), "--batch", "2", "--max-unavailable", "2", "--wait", "--timeout", "120", "--json"]);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    assert.equal(fleet.host("node-1").currentSystem(), plain["node-1"], "node-1 runs the release, not merely has it as boot default");
    assert.equal(testCalls("node-1", plain["node-1"] as string), 1);

    const next = await build(hosts);
    const bootCalls = (host: string) =>
      fleet
        .host(host)
        .switchCalls()
        .filter(([action, system]) => action === "boot" && system === next[host]).length;
    const started = await fleet.mustCli(["rollout", "start", ...targets(next), "--mode", "boot", "--canary", "1", "--progress-deadline", "5m", "--json"]);
    const id = started.json<{ rollout: RolloutJson }>().rollout.id;
    await waitFor(
      "the canary installed for its next boot",
      async () => (await rollout(id)).hosts.find((h) => h.name === "node-1")?.state === "boot-pending" || undefined,
      60_000,
      250,
    );
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const waiting = await rollout(id);
    assert.deepEqual([waiting.state, waiting.currentWave], ["running", 1], "the rollout waits for the canary to boot");
    assert.equal(waiting.hosts.find((h) => h.name === "node-1")?.state, "boot-pending");
    assert.notEqual(fleet.host("node-1").currentSystem(), next["node-1"], "the canary still runs the old system");
    assert.equal(bootCalls("node-2"), 0, "no other host is touched meanwhile");

    await rebootInto("node-1", next["node-1"] as string);
    await waitFor(
      "node-2 installed for its next boot",
      async () => (await rollout(id)).hosts.find((h) => h.name === "node-2")?.state === "boot-pending" || undefined,
      60_000,
      250,
    );
    assert.equal(bootCalls("node-2"), 1);
    await rebootInto("node-2", next["node-2"] as string);
    const final = await waitFor("rollout completed", async () => ((await rollout(id)).state === "completed" ? rollout(id) : undefined), 30_000, 250);
    assert.equal(final.outcome, "all-confirmed", final.reason);
  });

  test("a host superseded mid-rollout: completed with 1 skipped, and --wait exits 3", async () => {
    const paths = await build(["node-3", "node-4"]);
    const hotfix = await build(["node-4"]);
    const waiting = fleet.cli([
      "rollout",
      "start",
      `node-3=${paths["node-3"]}`,
      `node-4=${paths["node-4"]}`,
      "--canary",
      "1",
      "--gate",
      "--wait",
      "--timeout",
      "120",
      "--json",
    ]);
    const id = await waitFor(
      "the gate after the canary",
      async () => {
        const { rollouts } = (await fleet.mustCli(["rollout", "list", "--json"])).json<{ rollouts: RolloutJson[] }>();
        return rollouts.find((r) => r.state === "waiting-gate" && r.hosts.some((h) => h.name === "node-4"))?.id;
      },
      90_000,
      500,
    );
    await fleet.mustCli(["deploy", `node-4=${hotfix["node-4"]}`]);
    await fleet.mustCli(["rollout", "promote", id]);
    const result = await waiting;
    assert.equal(result.code, 3, result.stdout + result.stderr);
    const done = result.json<{ rollout: RolloutJson }>().rollout;
    assert.equal(done.state, "completed");
    assert.equal(done.outcome, "some-skipped");
    assert.deepEqual(
      done.skipped.map((s) => [s.host, s.code]),
      [["node-4", "E_SUPERSEDED"]],
    );
    assert.match(done.reason, /^completed with 1 skipped \(skipped: node-4 \(E_SUPERSEDED: /);
  });

  test("a manual deploy to a host in a closed maintenance window fetches now, activates when the window opens; --wait exits 3", async () => {
    const opensAt = new Date(Date.now() + 25_000);
    const cron = `${opensAt.getUTCSeconds()} ${opensAt.getUTCMinutes()} ${opensAt.getUTCHours()} * * *`;
    const added = await fleet.mustCli(["window", "add", "--tag", "late", "--cron", cron, "--duration", "10m", "--timezone", "UTC", "--json"]);
    const windowId = added.json<{ window: { id: string } }>().window.id;
    try {
      const before = fleet.host("node-8").currentSystem();
      const paths = await build(["node-8"]);
      const result = await fleet.cli(["deploy", `node-8=${paths["node-8"]}`, "--wait", "--timeout", "60", "--json"]);
      assert.equal(result.code, 3, result.stdout + result.stderr);
      const json = result.json<{ held: { host: string; opensAt: string }[]; hosts: { phase: string; heldForWindow: boolean }[] }>();
      assert.deepEqual(
        json.held.map((h) => h.host),
        ["node-8"],
      );
      assert.equal(Date.parse(json.held[0]?.opensAt ?? ""), Math.floor(opensAt.getTime() / 1000) * 1000);
      assert.deepEqual([json.hosts[0]?.phase, json.hosts[0]?.heldForWindow], ["fetched", true]);
      assert.ok(Date.now() < opensAt.getTime(), "deploy --wait returned before the window opened");
      assert.equal(fleet.host("node-8").currentSystem(), before, "nothing activated while the window is closed");
      assert.equal((await fleet.host("node-8").run(["nix-store", "--check-validity", paths["node-8"] as string])).code, 0, "fetched at once");
      await waitFor("node-8 activated in its window", () => (fleet.host("node-8").currentSystem() === paths["node-8"] ? true : undefined), 90_000, 500);
      // The window opens on the whole second the cron names.
      assert.ok(Date.now() >= Math.floor(opensAt.getTime() / 1000) * 1000, "activated only once the window opened");
    } finally {
      await fleet.mustCli(["window", "remove", windowId]);
    }
  });
});
