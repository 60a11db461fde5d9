import { afterEach, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ActivationMode, HostPhase, type ActivationResult, type AgentBody, type DesiredSystem } from "@ferry/protocol";
import { parseAgentConfig } from "../src/config.js";
import { Reconciler, type ReconcilerTransaction } from "../src/reconciler.js";
import { compileAgentConfig } from "../src/settings.js";
import { StateFile } from "../src/state-file.js";
import { capturingLogger, NEXT, PREV } from "./helpers/fake-host.js";
import { IntentFloor } from "../src/intent-floor.js";
import { IntentGate } from "../src/intent-policy.js";

const desired = (serial: number): DesiredSystem => ({
  hostName: "web1",
  storePath: NEXT,
  serial,
  deploymentId: `d${serial}`,
  rolloutId: "",
  mode: ActivationMode.ACTIVATION_MODE_SWITCH,
  activate: true,
  intent: undefined,
});

describe("Reconciler: an error escaping a transaction does not end the agent", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "ferry-reconciler-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function setUp(behaviour: { failRuns: number; failResume?: boolean; onSettled?: () => Promise<boolean> }) {
    const { log, events } = capturingLogger();
    const state = new StateFile(dir, log);
    const calls: string[] = [];
    const sent: AgentBody[] = [];
    const result = (serial: number): ActivationResult => ({
      hostName: "web1",
      serial,
      storePath: NEXT,
      success: true,
      phase: HostPhase.HOST_PHASE_ACTIVE,
      errorCode: "",
      errorMessage: "",
      output: "",
      currentSystem: NEXT,
      finishedAtMs: 1,
      checksFailingBeforeAndAfter: [],
      checksRun: 0,
    });
    const transaction: ReconcilerTransaction = {
      run: async (wanted) => {
        calls.push(`run ${wanted.serial}`);
        if (behaviour.failRuns-- > 0) throw new Error("a bug in a step");
        state.record((draft) => {
          draft.appliedSerial = wanted.serial;
        });
        return result(wanted.serial);
      },
      resume: async () => {
        if (behaviour.failResume) throw new Error("resume exploded");
        const open = state.state.transaction;
        calls.push(`resume ${open?.serial ?? "-"}`);
        if (!open) return undefined;
        state.record((draft) => {
          draft.transaction = null;
          draft.appliedSerial = open.serial;
        });
        return result(open.serial);
      },
      prefetch: async () => assert.fail("no prefetch here"),
      refuse: () => assert.fail("no refusal here"),
      currentSystem: () => PREV,
    };
    const link = {
      send: (body: AgentBody) => {
        sent.push(body);
        return true;
      },
    };
    const settings = compileAgentConfig(
      parseAgentConfig({
        controllerUrl: "ws://127.0.0.1:1/agent",
        hostName: "web1",
        tokenFile: "t",
        substituters: ["http://127.0.0.1:1/cache"],
        trustedPublicKeys: ["k:QUJD"],
      }),
    );
    const gate = new IntentGate(settings, new IntentFloor(dir), Date.now);
    const reconciler = new Reconciler(transaction, state, link, settings, log, gate, behaviour.onSettled);
    return { reconciler, state, calls, sent, events };
  }

  test("the error is logged with a code and the next desired system is still applied", async () => {
    const { reconciler, calls, sent, events } = setUp({ failRuns: 1 });
    reconciler.onDesired(desired(1));
    await reconciler.idle();
    const logged = events.find((event) => event["level"] === 50 && event["code"] === "E_INTERNAL");
    assert.ok(logged, JSON.stringify(events));
    assert.match(String(logged["err"]), /a bug in a step/);
    reconciler.onDesired(desired(2));
    await reconciler.idle();
    assert.deepEqual(calls, ["run 1", "run 2"], "no tight retry loop; the next desired system ran");
    assert.deepEqual(
      sent.map((body) => (body.$case === "result" ? body.value.serial : -1)),
      [2],
    );
  });

  test("a transaction left open is finished before new work starts", async () => {
    const { reconciler, state, calls } = setUp({ failRuns: 0 });
    state.update((draft) => {
      draft.transaction = {
        serial: 7,
        deploymentId: "d7",
        next: NEXT,
        previous: PREV,
        strategy: "switch",
        phase: "confirming",
        startedAtMs: 0,
        deadlineMs: 0,
        requireHeartbeat: false,
        failingBefore: [],
      };
    });
    reconciler.onDesired(desired(9));
    await reconciler.idle();
    assert.deepEqual(calls, ["resume 7", "run 9"]);
  });

  test("a failing resume at start-up is logged, not thrown", async () => {
    const { reconciler, events } = setUp({ failRuns: 0, failResume: true });
    await reconciler.resume();
    assert.ok(events.some((event) => event["code"] === "E_INTERNAL" && /resume exploded/.test(String(event["err"]))));
  });

  test("once an activation settled, a restart request stops the reconciler before any further work", async () => {
    const asked: string[][] = [];
    const { reconciler, calls } = setUp({
      failRuns: 0,
      onSettled: async () => {
        asked.push([...calls]);
        return true;
      },
    });
    reconciler.onDesired(desired(1));
    await reconciler.idle();
    assert.deepEqual(asked, [["run 1"]], "asked once, after the activation settled");
    reconciler.onDesired(desired(2));
    await reconciler.idle();
    assert.deepEqual(calls, ["run 1"], "nothing runs after the restart was requested");
  });
});
