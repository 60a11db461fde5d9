import { afterEach, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { FERRY_VERSION } from "@ferry/core";
import { agentVersion, runningBuild, sameBuild, unitBuild, type AgentBuild } from "../src/agent-build.js";
import { parseAgentConfig } from "../src/config.js";
import { AGENT_UNIT_FILE, SelfRestart } from "../src/self-restart.js";
import { compileAgentConfig } from "../src/settings.js";
import { StateFile } from "../src/state-file.js";
import { SwitchLock } from "../src/switch-lock.js";
import { capturingLogger } from "./helpers/fake-host.js";

const PKG_A = "/nix/store/0c8lmpnxsbl1sr8s8kgh0pn9wdswmkvz-ferry-0.1.0";
const PKG_B = "/nix/store/3qdvy1xrpdwn4kr5bb0gmk5fbpqzj5wf-ferry-0.1.0";
const CONFIG = "/nix/store/yc2kd6zgr0k1bl80h5k98j8c7ngvmdn1-ferry-agent.json";

const unitText = (execStart: string): string =>
  `[Unit]\nDescription=Ferry deployment agent\n\n[Service]\nEnvironment="PATH=/nix/store/x/bin"\nExecStart=${execStart}\nKillMode=process\nRestart=always\n`;

describe("agent builds: what runs, and what a unit starts", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "ferry-build-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test("a NixOS unit's ExecStart names the package and the arguments", () => {
    const file = join(dir, "ferry-agent.service");
    writeFileSync(file, unitText(`${PKG_A}/bin/ferry agent --config ${CONFIG}`));
    assert.deepEqual(unitBuild(file), { package: PKG_A, args: ["agent", "--config", CONFIG] });
    writeFileSync(file, unitText(`@${PKG_B}/bin/ferry "agent" --config ${CONFIG}`));
    assert.deepEqual(unitBuild(file), { package: PKG_B, args: ["agent", "--config", CONFIG] });
    writeFileSync(file, "[Service]\nExecStart=\nRestart=always\n");
    assert.equal(unitBuild(file), undefined, "an empty ExecStart starts nothing");
    assert.equal(unitBuild(join(dir, "absent.service")), undefined);
  });

  test("the running build is the package of the entry script, as started", () => {
    const started = runningBuild(["/nix/store/node/bin/node", `${PKG_A}/lib/ferry/packages/cli/dist/main.js`, "agent", "--config", CONFIG]);
    assert.deepEqual(started, { package: PKG_A, args: ["agent", "--config", CONFIG] });
    const unit: AgentBuild = { package: PKG_A, args: ["agent", "--config", CONFIG] };
    assert.ok(sameBuild(started, unit));
    assert.ok(!sameBuild(started, { ...unit, package: PKG_B }), "another package");
    assert.ok(!sameBuild(started, { ...unit, args: ["agent", "--config", "/etc/other.json"] }), "another configuration");
    const outside = join(dir, "main.js");
    writeFileSync(outside, "");
    symlinkSync(outside, join(dir, "link.js"));
    assert.equal(runningBuild(["node", join(dir, "link.js"), "agent"]).package, outside, "outside the store: the real file");
  });

  test("the reported version carries the package's store hash", () => {
    assert.equal(agentVersion({ package: PKG_A, args: [] }), `${FERRY_VERSION}+0c8lmpnxsbl1`);
    assert.equal(agentVersion({ package: "/home/dev/ferry/packages/cli/dist/main.js", args: [] }), FERRY_VERSION);
  });
});

describe("SelfRestart", () => {
  let dir: string;
  let system: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "ferry-self-restart-"));
    system = join(dir, "system");
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const RUNNING: AgentBuild = { package: PKG_A, args: ["agent", "--config", CONFIG] };

  function setUp(options: { selfRestart?: boolean; unit?: string } = {}) {
    if (options.unit !== undefined) {
      const file = join(system, AGENT_UNIT_FILE);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, unitText(options.unit));
    }
    const { log, events } = capturingLogger();
    const state = new StateFile(join(dir, "state"), log);
    const lock = new SwitchLock(join(dir, "switch.lock"));
    const settings = compileAgentConfig(
      parseAgentConfig({
        controllerUrl: "ws://127.0.0.1:1/agent",
        hostName: "web1",
        tokenFile: "t",
        substituters: ["http://127.0.0.1:1/cache"],
        trustedPublicKeys: ["k:QUJD"],
        selfRestart: options.selfRestart ?? true,
      }),
    );
    const restart = (running: AgentBuild = RUNNING) =>
      new SelfRestart({ settings, state, log, running, currentSystem: () => system, switchLock: lock, now: () => 1234 });
    return { state, lock, events, restart };
  }

  test("the running system names another package: restart, recorded on disk first, holding the switch lock", async () => {
    const { state, lock, restart } = setUp({ unit: `${PKG_B}/bin/ferry agent --config ${CONFIG}` });
    assert.equal(await restart().afterSettled(), true);
    const onDisk = JSON.parse(readFileSync(join(dir, "state", "state.json"), "utf8"));
    assert.deepEqual(onDisk.agentRestart, { from: `${PKG_A} agent --config ${CONFIG}`, to: `${PKG_B} agent --config ${CONFIG}`, requestedAtMs: 1234 });
    assert.equal(state.state.agentRestart?.to, `${PKG_B} agent --config ${CONFIG}`);
    assert.equal(lock.tryAcquire("dry-activate"), undefined, "nothing switches between the decision and the exit");
  });

  test("no restart: same build, no unit, the setting off, or a transaction open", async () => {
    assert.equal(
      await setUp({ unit: `${PKG_A}/bin/ferry agent --config ${CONFIG}` })
        .restart()
        .afterSettled(),
      false,
    );
    rmSync(system, { recursive: true, force: true });
    assert.equal(await setUp().restart().afterSettled(), false, "a system without the unit");
    assert.equal(
      await setUp({ selfRestart: false, unit: `${PKG_B}/bin/ferry agent --config ${CONFIG}` })
        .restart()
        .afterSettled(),
      false,
    );
    const open = setUp({ unit: `${PKG_B}/bin/ferry agent --config ${CONFIG}` });
    open.state.update((draft) => {
      draft.transaction = {
        serial: 1,
        deploymentId: "d1",
        next: PKG_B,
        previous: PKG_A,
        strategy: "trial",
        phase: "confirming",
        startedAtMs: 0,
        deadlineMs: 0,
        requireHeartbeat: false,
        failingBefore: [],
      };
    });
    assert.equal(await open.restart().afterSettled(), false, "never in the middle of a transaction");
  });

  test("the next process confirms the restart took, or remembers it did not and does not try again", async () => {
    const took = setUp({ unit: `${PKG_B}/bin/ferry agent --config ${CONFIG}` });
    await took.restart().afterSettled();
    took.restart({ package: PKG_B, args: ["agent", "--config", CONFIG] }).reportPreviousRestart();
    assert.equal(took.state.state.agentRestart, null);
    assert.ok(took.events.some((event) => event["msg"] === "restarted into the agent build the running system names"));

    rmSync(join(dir, "state"), { recursive: true });
    const stuck = setUp({ unit: `${PKG_B}/bin/ferry agent --config ${CONFIG}` });
    await stuck.restart().afterSettled();
    // systemd started the old build again (say a drop-in overrides ExecStart).
    const again = stuck.restart();
    again.reportPreviousRestart();
    assert.ok(stuck.events.some((event) => event["code"] === "E_AGENT_RESTART_INEFFECTIVE"));
    assert.equal(stuck.state.state.agentRestart?.ineffective, true);
    assert.equal(await again.afterSettled(), false, "no restart loop");
  });
});
