// Each way a new system can go wrong ends with the previous system running,
// its profile and /run/current-system restored, and the controller told why.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { rmSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { Fleet } from "../harness/fleet.js";
import { buildFixtureSystem, type FixtureBehaviour } from "../harness/fixtures.js";
import { waitFor } from "../harness/exec.js";
import { allOnline, hostStatus, settled } from "../harness/status.js";

const HEALTH_CHECK = { type: "command", argv: ["/bin/sh", "-c", 'test "$(cat /run/fixture-health 2>/dev/null || echo ok)" = ok'], timeout: 5 };
const AGENT_CONFIG = { confirmTimeout: 6, activationTimeout: 4, healthChecks: [HEALTH_CHECK] };

const FAULTS: { host: string; behaviour: FixtureBehaviour; code: string }[] = [
  { host: "f-activation", behaviour: "fail-activation", code: "E_ACTIVATION_FAILED" },
  { host: "f-health", behaviour: "fail-health", code: "E_HEALTH_CHECK_FAILED" },
  { host: "f-network", behaviour: "break-network", code: "E_CONFIRM_TIMEOUT" },
  { host: "f-hang", behaviour: "hang", code: "E_ACTIVATION_TIMEOUT" },
];

describe("activation faults end with the previous system restored", { skip: process.getuid?.() !== 0 ? "needs root for network namespaces" : false }, () => {
  let fleet: Fleet;
  const baseline = new Map<string, string>();

  before(async () => {
    fleet = await Fleet.start("faults");
    for (const { host } of FAULTS) await fleet.addHost(host, { agentConfig: AGENT_CONFIG });
    for (const { host } of FAULTS) baseline.set(host, await buildFixtureSystem(host, 1));
    await fleet.push([...baseline.values()]);
    await allOnline(fleet);
    const first = await fleet.cli(["deploy", ...[...baseline].map(([host, path]) => `${host}=${path}`), "--wait", "--timeout", "120"]);
    assert.equal(first.code, 0, first.stderr);
  });

  after(async () => {
    await fleet?.close();
  });

  test("each fault rolls back, and the controller is told why", async () => {
    const broken = new Map<string, string>();
    for (const { host, behaviour } of FAULTS) broken.set(host, await buildFixtureSystem(host, 2, behaviour));
    await fleet.push([...broken.values()]);
    const result = await fleet.cli(["deploy", ...[...broken].map(([host, path]) => `${host}=${path}`), "--wait", "--timeout", "120", "--json"]);
    assert.equal(result.code, 1, "deploy --wait fails when hosts roll back");
    for (const { host, code } of FAULTS) {
      const status = await settled(fleet, host);
      const sim = fleet.host(host);
      assert.equal(status.lastError?.code, code, `${host}: ${status.lastError?.message}`);
      assert.equal(status.phase, "rolled-back", host);
      assert.equal(sim.currentSystem(), baseline.get(host), `${host} runs its previous system`);
      assert.equal(sim.profileSystem(), baseline.get(host), `${host} boots its previous system`);
      assert.equal(status.currentSystem, baseline.get(host));
      assert.deepEqual(sim.switchCalls().at(-1), ["switch", baseline.get(host)], `${host}: the previous system was re-activated`);
      assert.equal(sim.agentState().transaction, null);
    }
    const health = await hostStatus(fleet, "f-health");
    assert.match(health.lastError?.output ?? "", /FAIL command:/, "the failing check's output reaches the controller");
    const network = fleet.host("f-network");
    assert.ok(network.agentLogText().includes("previous system restored"));
  });

  test("a switch lock held by someone else is reported at once and nothing is switched", async () => {
    const host = fleet.host("f-health");
    const running = host.currentSystem();
    const calls = host.switchCalls().length;
    const next = await buildFixtureSystem("f-health", 5);
    await fleet.push([next]);
    // An operator's nixos-rebuild, as the agent sees it: the lock NixOS's switch takes, held by another process.
    const holder = await host.run([
      "sh",
      "-c",
      "mkdir -p /run/nixos && (flock /run/nixos/switch-to-configuration.lock sleep 30 >/dev/null 2>&1 &) && sleep 0.3",
    ]);
    assert.equal(holder.code, 0, holder.stderr);
    const started = Date.now();
    const result = await fleet.cli(["deploy", `f-health=${next}`, "--wait", "--timeout", "60"]);
    assert.equal(result.code, 1);
    assert.ok(Date.now() - started < 25_000, "refused without waiting for the lock");
    const status = await hostStatus(fleet, "f-health");
    assert.equal(status.lastError?.code, "E_SWITCH_LOCKED");
    assert.match(status.lastError?.message ?? "", /held by pid \d+ \(flock/);
    assert.equal(host.switchCalls().length, calls, "nothing was switched");
    assert.equal(host.currentSystem(), running);
    await host.run(["pkill", "-f", "^flock /run/nixos/switch-to-configuration.lock"]);
  });

  test("a host with too little free space refuses to fetch and stays as it is", async () => {
    const host = await fleet.addHost("f-space", { agentConfig: { ...AGENT_CONFIG, diskReserveMiB: 1024 * 1024 * 1024 } });
    const system = await buildFixtureSystem("f-space", 1);
    await fleet.push([system]);
    await allOnline(fleet);
    const result = await fleet.cli(["deploy", `f-space=${system}`, "--wait", "--timeout", "60"]);
    assert.equal(result.code, 1);
    assert.equal((await hostStatus(fleet, "f-space")).lastError?.code, "E_NO_SPACE");
    assert.equal((await host.run(["nix-store", "--check-validity", system])).code === 0, false, "nothing was fetched");
    assert.equal(host.switchCalls().length, 0);
  });

  test("a closure missing from the cache activates nothing, and succeeds once the paths arrive", async () => {
    const host = fleet.host("f-activation");
    const before = host.switchCalls().length;
    const next = await buildFixtureSystem("f-activation", 3);
    await fleet.push([next]);
    await host.stopAgent();
    const recorded = await fleet.cli(["deploy", `f-activation=${next}`]);
    assert.equal(recorded.code, 0, recorded.stderr);
    // The cache loses the system's dependency after the deploy was accepted.
    const cacheDir = join(fleet.controller.dataDir, "cache");
    for (const file of readdirSync(cacheDir)) if (file.endsWith(".narinfo")) rmSync(join(cacheDir, file));
    host.startAgent();
    const failed = await settled(fleet, "f-activation", 60_000);
    assert.equal(failed.lastError?.code, "E_PATH_NOT_IN_CACHE", failed.lastError?.message);
    assert.equal(host.switchCalls().length, before, "nothing was activated");
    assert.equal(host.currentSystem(), baseline.get("f-activation"));
    const refused = await fleet.cli(["deploy", `f-activation=${next}`, "--json"]);
    assert.equal(refused.json<{ error: { code: string } }>().error.code, "E_PATH_NOT_IN_CACHE", "the controller refuses while the cache is incomplete");
    await fleet.push([next]);
    const retried = await fleet.cli(["deploy", `f-activation=${next}`, "--wait", "--timeout", "60"]);
    assert.equal(retried.code, 0, retried.stderr);
    assert.equal(host.currentSystem(), next);
  });

  test("a controller outage longer than confirmTimeout rolls no confirmed host back", async () => {
    const calls = new Map(FAULTS.map(({ host }) => [host, fleet.host(host).switchCalls().length]));
    const running = new Map(FAULTS.map(({ host }) => [host, fleet.host(host).currentSystem()]));
    await fleet.controller.stop("SIGKILL");
    await new Promise((resolve) => setTimeout(resolve, (AGENT_CONFIG.confirmTimeout + 3) * 1000));
    for (const { host } of FAULTS) {
      assert.equal(fleet.host(host).switchCalls().length, calls.get(host), `${host} did not switch during the outage`);
      assert.equal(fleet.host(host).currentSystem(), running.get(host));
    }
    await fleet.controller.start();
    await allOnline(fleet);
    await waitFor("statuses refreshed", async () => (await hostStatus(fleet, "f-health")).online || undefined);
  });
});
