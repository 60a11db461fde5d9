// Signed deploy intents end to end: a host that requires them runs only what
// a key it trusts approved, for it, in that mode, never below the version it
// applied last. A "compromised controller" (its database written directly,
// or an old signed intent replayed through its gRPC API) gets each attempt
// refused with its own code while the host keeps running what it ran; the
// host's own rollback after a failed health check still works; rollouts and
// bundles carry intents too.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { Fleet, type SigningKey } from "../harness/fleet.js";
import { ferry } from "../harness/ferry-cli.js";
import { buildFixtureSystem } from "../harness/fixtures.js";
import { FERRY_BIN } from "../harness/paths.js";
import { waitFor } from "../harness/exec.js";
import { hostStatus, settled, type HostJson } from "../harness/status.js";
import type { SimHost } from "../harness/sim-host.js";

const HEALTH_CHECK = { type: "command", argv: ["/bin/sh", "-c", 'test "$(cat /run/fixture-health 2>/dev/null || echo ok)" = ok'], timeout: 5 };
const BOOT = 2;

interface ErrorJson {
  error: { code: string; message: string };
}

describe("signed deploy intents", { skip: process.getuid?.() !== 0 ? "needs root for network namespaces" : false }, () => {
  let fleet: Fleet;
  let intentKey: SigningKey;
  let intruder: SigningKey;
  let host: SimHost;
  /** The signed intent web-1's g2 was deployed with, as the controller stored it. */
  let g2Intent = "";
  const sys: Record<string, string> = {};
  const file = (name: string): string => join(fleet.dir, name);
  const system = (name: string): string => sys[name] as string;

  /** What a refusal must leave as it was on the host. */
  function hostSnapshot(h: SimHost = host): { current: string; profile: string; floor: string; switches: number } {
    let floor = "";
    try {
      floor = readFileSync(join(h.stateDir, "intent-floor.json"), "utf8");
    } catch {
      // No signed intent applied yet.
    }
    return { current: h.currentSystem(), profile: h.profileSystem(), floor, switches: h.switchCalls().length };
  }

  async function deploy(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; host: HostJson }> {
    const result = await ferry(["deploy", ...args, "--wait", "--timeout", "120"], { ...fleet.env, ...env });
    return { code: result.code, host: await hostStatus(fleet, "web-1") };
  }

  async function assertRefusedByHost(args: string[], code: string): Promise<void> {
    const before = hostSnapshot();
    const result = await deploy(args);
    assert.equal(result.code, 1, `ferry deploy ${args.join(" ")} should fail`);
    assert.equal(result.host.lastError?.code, code, result.host.lastError?.message);
    assert.equal(result.host.phase, "failed");
    assert.deepEqual(hostSnapshot(), before, "the host changed nothing");
  }

  /**
   * Plays a compromised controller: stops it, writes web-1's desired system
   * straight into its database (a new serial, so the agent takes it), starts
   * it again and waits for the host's answer.
   */
  async function forgeDesired(change: { system: string; intent?: string; mode?: number }): Promise<HostJson> {
    await fleet.controller.stop("SIGTERM");
    const db = new Database(join(fleet.controller.dataDir, "state.sqlite"));
    try {
      const row = db.prepare("SELECT activation_mode FROM hosts WHERE name = 'web-1'").get() as { activation_mode: number };
      db.prepare(
        "UPDATE hosts SET desired_system = ?, desired_intent = ?, activation_mode = ?, desired_serial = desired_serial + 1, desired_activate = 1 WHERE name = 'web-1'",
      ).run(change.system, change.intent ?? "", change.mode ?? row.activation_mode);
    } finally {
      db.close();
    }
    await fleet.controller.start();
    return settled(fleet, "web-1", 60_000);
  }

  function storedIntent(): string {
    const db = new Database(join(fleet.controller.dataDir, "state.sqlite"), { readonly: true });
    try {
      return (db.prepare("SELECT desired_intent FROM hosts WHERE name = 'web-1'").get() as { desired_intent: string }).desired_intent;
    } finally {
      db.close();
    }
  }

  before(async () => {
    fleet = await Fleet.start("intents");
    intentKey = await fleet.generateKey("ferry-ci-1");
    intruder = await fleet.generateKey("intruder-1");
    const policy = { intentPublicKeys: [intentKey.publicKey], requireSignedIntents: true };
    host = await fleet.addHost("web-1", { agentConfig: { ...policy, confirmTimeout: 6, activationTimeout: 4, healthChecks: [HEALTH_CHECK] } });
    await fleet.addHost("solo", { start: false, agentConfig: policy });
    for (const [name, generation, behaviour] of [
      ["g1", 1, "ok"],
      ["g2", 2, "ok"],
      ["g3", 3, "ok"],
      ["g4", 4, "ok"],
      ["g5", 6, "ok"],
      ["g6", 7, "ok"],
      ["unhealthy", 5, "fail-health"],
    ] as const) {
      sys[name] = await buildFixtureSystem("web-1", generation, behaviour);
    }
    sys["solo1"] = await buildFixtureSystem("solo", 1);
    await fleet.push(Object.values(sys).filter((path) => path !== sys["g5"] && path !== sys["g6"]));
    await waitFor("web-1 online", async () => (await hostStatus(fleet, "web-1")).online || undefined);
  });

  after(async () => {
    await fleet?.close();
  });

  test("a deploy signed with the host's key activates; unsigned (E_INTENT_UNSIGNED) or signed by another key (E_INTENT_SIGNATURE) changes nothing", async () => {
    // Signed first, kept for later: an intent a controller could hold back and replay.
    const signed = await fleet.cli(["intent", "sign", `web-1=${system("g1")}`, "--key-file", intentKey.secretFile, "-o", file("old.json"), "--json"]);
    assert.equal(signed.code, 0, signed.stderr);
    const shown = (await fleet.mustCli(["intent", "show", file("old.json"), "--trusted-key", intentKey.publicKey, "--json"])).json<{
      intents: { host: string; mode: string; valid: boolean }[];
    }>();
    assert.deepEqual(
      shown.intents.map((intent) => [intent.host, intent.mode, intent.valid]),
      [["web-1", "default", true]],
    );

    const first = await deploy([`web-1=${system("g1")}`, "--intent-key-file", intentKey.secretFile]);
    assert.equal(first.code, 0, JSON.stringify(first.host.lastError));
    assert.equal(host.currentSystem(), system("g1"));
    const floor = JSON.parse(hostSnapshot().floor) as { floor: { signer: string } };
    assert.equal(floor.floor.signer, "ferry-ci-1");

    await assertRefusedByHost([`web-1=${system("g2")}`], "E_INTENT_UNSIGNED");
    await assertRefusedByHost([`web-1=${system("g2")}`, "--intent-key-file", intruder.secretFile], "E_INTENT_SIGNATURE");
    assert.ok(!host.switchCalls().some(([, path]) => path === system("g2")), "g2's switch script never ran");
  });

  test("FERRY_INTENT_KEY_FILE signs; replaying the older signed intent through the API is refused (E_INTENT_REPLAYED)", async () => {
    const second = await deploy([`web-1=${system("g2")}`], { FERRY_INTENT_KEY_FILE: intentKey.secretFile });
    assert.equal(second.code, 0, JSON.stringify(second.host.lastError));
    assert.equal(host.currentSystem(), system("g2"));
    g2Intent = storedIntent();
    // The controller takes the old intent (it cannot know the host's floor); the host refuses to go back to g1.
    await assertRefusedByHost(["--intents", file("old.json")], "E_INTENT_REPLAYED");
    assert.equal(host.currentSystem(), system("g2"));
  });

  test("a compromised controller writing its database: another path under a valid intent, boot mode, no intent — each refused, the host keeps g2", async () => {
    assert.match(g2Intent, new RegExp(`ferry-intent-v1;web-1;${system("g2")};default;`));
    const before = hostSnapshot();
    const cases: [{ system: string; intent?: string; mode?: number }, string][] = [
      [{ system: system("g3"), intent: g2Intent }, "E_INTENT_PATH_MISMATCH"],
      [{ system: system("g2"), intent: g2Intent, mode: BOOT }, "E_INTENT_MODE_MISMATCH"],
      [{ system: system("g1"), intent: "" }, "E_INTENT_UNSIGNED"],
      [{ system: system("g3"), intent: g2Intent.replaceAll(system("g2"), system("g3")) }, "E_INTENT_SIGNATURE"],
    ];
    for (const [change, code] of cases) {
      const status = await forgeDesired(change);
      assert.equal(status.lastError?.code, code, `${JSON.stringify(change).slice(0, 200)}: ${status.lastError?.message ?? ""}`);
      assert.deepEqual(hostSnapshot(), before, `${code}: the host changed nothing`);
    }
    assert.deepEqual(
      host.switchCalls().filter(([, path]) => path === system("g3")),
      [],
    );
  });

  test("dry-activate needs a dry-activate intent (E_INTENT_UNSIGNED without); with one it runs", async () => {
    const refused = await fleet.cli(["dry-activate", `web-1=${system("g3")}`, "--timeout", "60", "--json"]);
    assert.equal(refused.code, 1);
    assert.equal(refused.json<ErrorJson>().error.code, "E_INTENT_UNSIGNED");
    assert.ok(!host.switchCalls().some(([action]) => action === "dry-activate"));
    const ran = await fleet.cli(["dry-activate", `web-1=${system("g3")}`, "--timeout", "60", "--intent-key-file", intentKey.secretFile, "--json"]);
    assert.equal(ran.code, 0, ran.stdout + ran.stderr);
    assert.deepEqual(host.switchCalls().at(-1), ["dry-activate", system("g3")]);
    assert.equal(host.currentSystem(), system("g2"));
  });

  test("a signed system that fails its health check is rolled back by the host; the next signed deploy goes through", async () => {
    const failed = await deploy([`web-1=${system("unhealthy")}`, "--intent-key-file", intentKey.secretFile]);
    assert.equal(failed.code, 1);
    assert.equal(failed.host.lastError?.code, "E_HEALTH_CHECK_FAILED");
    assert.equal(failed.host.phase, "rolled-back");
    assert.equal(host.currentSystem(), system("g2"));
    assert.equal(host.profileSystem(), system("g2"));

    const next = await deploy([`web-1=${system("g3")}`, "--intent-key-file", intentKey.secretFile]);
    assert.equal(next.code, 0, JSON.stringify(next.host.lastError));
    assert.equal(host.currentSystem(), system("g3"));
  });

  test("a rollout signs each host's intent when it starts", async () => {
    const result = await fleet.cli([
      "rollout",
      "start",
      `web-1=${system("g4")}`,
      "--intent-key-file",
      intentKey.secretFile,
      "--wait",
      "--timeout",
      "120",
      "--json",
    ]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.equal(result.json<{ rollout: { outcome: string } }>().rollout.outcome, "all-confirmed");
    assert.equal(host.currentSystem(), system("g4"));
    assert.match(storedIntent(), new RegExp(`;web-1;${system("g4")};default;`));
  });

  test("apply-bundle enforces the same policy: an unsigned bundle is refused (E_INTENT_UNSIGNED), a signed one applies", async () => {
    const solo = fleet.host("solo");
    const config = join(solo.dir, "agent.json");
    writeFileSync(file("solo.hosts.json"), JSON.stringify({ hosts: { solo: system("solo1") } }));
    const create = (name: string, extra: string[] = []) =>
      fleet.mustCli(["bundle", "create", "--manifest", file("solo.hosts.json"), "-o", file(name), "--signing-key-file", fleet.key.secretFile, ...extra]);
    const apply = (bundle: string) => solo.run([process.execPath, FERRY_BIN, "agent", "apply-bundle", bundle, "--config", config, "--json"], 60_000);

    await create("unsigned.ferry");
    const before = hostSnapshot(solo);
    const refused = await apply(file("unsigned.ferry"));
    assert.equal(refused.code, 1, refused.stdout + refused.stderr);
    assert.equal((JSON.parse(refused.stdout) as ErrorJson).error.code, "E_INTENT_UNSIGNED");
    assert.deepEqual(hostSnapshot(solo), before);

    await create("signed.ferry", ["--intent-key-file", intentKey.secretFile]);
    const inspected = (await fleet.mustCli(["bundle", "inspect", file("signed.ferry"), "--json"])).json<{ formatVersion: string; intents: string[] }>();
    assert.equal(inspected.formatVersion, "2.2", "format 2 (streamed), minor 2 (intents)");
    assert.match(inspected.intents[0] ?? "", new RegExp(`^ferry-intent-v1;solo;${system("solo1")};default;`));
    const applied = await apply(file("signed.ferry"));
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    await waitFor("solo runs its system", () => solo.currentSystem() === system("solo1") || undefined, 10_000);
  });

  test("a site controller relays a bundle's intents with bundle import --deploy; without one the host refuses (E_INTENT_UNSIGNED)", async () => {
    writeFileSync(join(fleet.controller.dataDir, "bundle-trusted-keys"), `${fleet.key.publicKey}\n`);
    const bundle = async (name: string, path: string, extra: string[] = []): Promise<string> => {
      writeFileSync(file(`${name}.hosts.json`), JSON.stringify({ hosts: { "web-1": path } }));
      await fleet.mustCli([
        "bundle",
        "create",
        "--manifest",
        file(`${name}.hosts.json`),
        "-o",
        file(name),
        "--signing-key-file",
        fleet.key.secretFile,
        ...extra,
      ]);
      return file(name);
    };
    const importAndSettle = async (bundleFile: string): Promise<HostJson> => {
      const before = (await hostStatus(fleet, "web-1")).desiredSerial;
      await fleet.mustCli(["bundle", "import", bundleFile, "--trusted-key", fleet.key.publicKey, "--deploy"]);
      return waitFor(
        "web-1 answered the bundle's deployment",
        async () => {
          const status = await hostStatus(fleet, "web-1");
          return status.desiredSerial > before && status.appliedSerial === status.desiredSerial && ["active", "failed"].includes(status.phase)
            ? status
            : undefined;
        },
        60_000,
      );
    };
    const before = hostSnapshot();
    const unsigned = await importAndSettle(await bundle("site-unsigned.ferry", system("g5")));
    assert.equal(unsigned.lastError?.code, "E_INTENT_UNSIGNED");
    assert.deepEqual(hostSnapshot(), before);

    const signed = await importAndSettle(await bundle("site-signed.ferry", system("g6"), ["--intent-key-file", intentKey.secretFile]));
    assert.equal(signed.phase, "active", JSON.stringify(signed.lastError));
    assert.equal(host.currentSystem(), system("g6"));
  });
});
