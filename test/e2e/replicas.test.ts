// Two real controller processes on one durable PostgreSQL database, with real
// agents and Nix stores in namespaces: the leader killed with SIGKILL in the
// middle of a rollout (its agents move to the other replica, which finishes
// the rollout without activating any host twice), a deploy given to one
// replica reaching an agent that knows only the other, and PostgreSQL
// restarted in the middle of a rollout.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { buildFixtureSystem } from "../harness/fixtures.js";
import { waitFor } from "../harness/exec.js";
import { findPostgres } from "../harness/postgres.js";
import { ReplicaFleet } from "../harness/replica-fleet.js";
import type { ControllerProcess } from "../harness/controller-proc.js";
import type { HostJson } from "../harness/status.js";

const found = findPostgres();
const skip = process.getuid?.() !== 0 ? "needs root for network namespaces" : "skip" in found ? found.skip : false;
const HOSTS = ["r-1", "r-2", "r-3"];

interface RolloutJson {
  id: string;
  state: string;
  reason: string;
  hosts: { name: string; wave: number; state: string; errorCode: string }[];
}

describe("controller replicas on PostgreSQL, end to end", { skip }, () => {
  let fleet: ReplicaFleet;
  let a: ControllerProcess;
  let b: ControllerProcess;
  let generation = 0;

  before(async () => {
    fleet = await ReplicaFleet.create("replicas", 2);
    a = fleet.replica(0);
    b = fleet.replica(1);
    await fleet.startReplica(a);
    assert.equal(await fleet.leader(), a, "the only replica leads");
  });

  after(async () => {
    await fleet?.close();
  });

  /** A slow (3 s) system for each of HOSTS, pushed to every running replica. */
  async function release(): Promise<Record<string, string>> {
    generation += 1;
    const paths: Record<string, string> = {};
    for (const name of HOSTS) paths[name] = await buildFixtureSystem(name, generation, "slow");
    await fleet.push(Object.values(paths));
    return paths;
  }

  function testCalls(name: string, path: string): number {
    return fleet
      .host(name)
      .switchCalls()
      .filter(([action, system]) => action === "test" && system === path).length;
  }

  async function startRollout(on: ControllerProcess, paths: Record<string, string>): Promise<string> {
    const targets = Object.entries(paths).map(([name, path]) => `${name}=${path}`);
    const started = await fleet.mustCli(on, ["rollout", "start", ...targets, "--canary", "1", "--batch", "1", "--max-unavailable", "1", "--json"]);
    return started.json<{ rollout: RolloutJson }>().rollout.id;
  }

  /** The canary confirmed and the next host inside its (3 s) switch: the middle of the rollout. */
  async function midRollout(paths: Record<string, string>): Promise<void> {
    await waitFor(
      "one host switched and the next one switching",
      () => {
        const switched = HOSTS.filter((name) => fleet.host(name).currentSystem() === paths[name]);
        const switching = HOSTS.filter((name) => testCalls(name, paths[name] as string) > 0 && !switched.includes(name));
        return (switched.length >= 1 && switching.length >= 1) || undefined;
      },
      120_000,
      50,
    );
  }

  /** Polls `ferry rollout status` on `on` until the rollout ends; a refused call (database down) is asked again. */
  async function finished(on: ControllerProcess, id: string): Promise<RolloutJson> {
    return waitFor(
      `rollout ${id} to end`,
      async () => {
        const status = await fleet.cli(on, ["rollout", "status", id, "--json"]);
        if (status.code !== 0) return undefined;
        const rollout = status.json<{ rollout: RolloutJson }>().rollout;
        return ["completed", "aborted", "failed"].includes(rollout.state) ? rollout : undefined;
      },
      120_000,
      250,
    );
  }

  async function hostOn(on: ControllerProcess, name: string): Promise<HostJson> {
    return (await fleet.mustCli(on, ["status", name, "--json"])).json<{ hosts: HostJson[] }>().hosts[0] as HostJson;
  }

  /** Every host runs its target, by its own /run and by both replicas' records, and was switched to it once. */
  async function assertRolledOut(paths: Record<string, string>): Promise<void> {
    for (const name of HOSTS) {
      const path = paths[name] as string;
      assert.equal(fleet.host(name).currentSystem(), path, `${name} runs its target`);
      assert.equal(testCalls(name, path), 1, `${name} activated exactly once: ${JSON.stringify(fleet.host(name).switchCalls())}`);
      for (const replica of [a, b]) assert.equal((await hostOn(replica, name)).currentSystem, path, `${name} as ${replica.address} records it`);
    }
  }

  test(
    "the leader killed with SIGKILL mid-rollout: its agents fail over, the other replica finishes, no host activated twice",
    { timeout: 240_000 },
    async () => {
      // B is not up yet, so every agent's link is to A, the replica that dies.
      for (const name of HOSTS) await fleet.addHost(name, a, [a, b], { confirmTimeout: 20 });
      for (const name of HOSTS) await waitFor(`${name} connected to A`, () => fleet.connectedTo(fleet.host(name)) === a || undefined, 30_000);
      await fleet.startReplica(b);
      assert.equal(await fleet.leader(), a, "A keeps the lead when B starts");

      const paths = await release();
      // Started on the follower: the leader drives it.
      const id = await startRollout(b, paths);
      await midRollout(paths);
      await a.stop("SIGKILL");

      assert.equal(await fleet.leader(), b, "B takes the lead");
      const done = await finished(b, id);
      assert.equal(done.state, "completed", JSON.stringify(done));
      for (const name of HOSTS) assert.equal(fleet.connectedTo(fleet.host(name)), b, `${name} moved to B`);
      await fleet.startReplica(a);
      await assertRolledOut(paths);
    },
  );

  test("a deploy given to one replica reaches an agent that knows only the other", { timeout: 120_000 }, async () => {
    const solo = await fleet.addHost("solo", a, [b]);
    await waitFor("solo connected to B", () => fleet.connectedTo(solo) === b || undefined, 30_000);
    const path = await buildFixtureSystem("solo", 1);
    await fleet.push([path]);
    const deployed = await fleet.cli(a, ["deploy", `solo=${path}`, "--wait", "--timeout", "90"]);
    assert.equal(deployed.code, 0, deployed.stdout + deployed.stderr);
    assert.equal(solo.currentSystem(), path);
    assert.equal((await hostOn(a, "solo")).currentSystem, path, "A records what the agent on B reported");
  });

  test("PostgreSQL restarted mid-rollout: both replicas reconnect and the rollout completes, nothing lost", { timeout: 240_000 }, async () => {
    const paths = await release();
    const id = await startRollout(await fleet.leader(), paths);
    await midRollout(paths);
    await fleet.cluster.restart();
    const done = await finished(a, id);
    assert.equal(done.state, "completed", JSON.stringify(done));
    assert.ok(fleet.running(a) && fleet.running(b), "both replicas outlived the restart");
    await assertRolledOut(paths);
  });
});
