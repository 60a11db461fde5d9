import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { FerryError } from "@ferry/core";
import { parseAgentConfig } from "../src/config.js";
import { afterFailure, onResume } from "../src/rollback-decision.js";
import { compileAgentConfig } from "../src/settings.js";
import type { Transaction, TransactionPhase } from "../src/state-file.js";
import { desired, fakeHost, NEXT, PREV } from "./helpers/fake-host.js";

const MINIMAL = {
  controllerUrl: "ws://127.0.0.1:7070/agent",
  hostName: "web1",
  tokenFile: "/run/secrets/ferry-token",
  substituters: ["http://127.0.0.1:7070/cache"],
  trustedPublicKeys: ["ferry-1:QUJD"],
};

describe("compileAgentConfig: durations converted once", () => {
  test("seconds become milliseconds, and the pre-switch wait defaults to confirmTimeout", () => {
    const settings = compileAgentConfig(parseAgentConfig({ ...MINIMAL, confirmTimeout: 30, activationTimeout: 40, fetchTimeout: 50, heartbeatInterval: 0.5 }));
    assert.equal(settings.confirmTimeoutMs, 30_000);
    assert.equal(settings.activationTimeoutMs, 40_000);
    assert.equal(settings.fetchTimeoutMs, 50_000);
    assert.equal(settings.heartbeatIntervalMs, 500);
    assert.equal(settings.reconnectMaxDelayMs, 60_000);
    assert.equal(settings.preSwitchControllerWaitMs, 30_000);
  });

  test("preSwitchControllerWait is a setting of its own; 0 is allowed, negative is refused", () => {
    assert.equal(compileAgentConfig(parseAgentConfig({ ...MINIMAL, preSwitchControllerWait: 7 })).preSwitchControllerWaitMs, 7000);
    assert.equal(compileAgentConfig(parseAgentConfig({ ...MINIMAL, preSwitchControllerWait: 0 })).preSwitchControllerWaitMs, 0);
    assert.throws(() => parseAgentConfig({ ...MINIMAL, preSwitchControllerWait: -1 }), /preSwitchControllerWait/);
  });
});

describe("the pre-switch controller wait", () => {
  async function attemptsWith(config: Record<string, unknown>): Promise<{ attempts: number; waitedMs: number; code: string }> {
    const host = fakeHost({ previous: PREV, config: { confirmTimeout: 120, ...config } });
    try {
      let attempts = 0;
      let firstAt = 0;
      let lastAt = 0;
      const result = await host
        .transaction({
          heartbeat: async () => {
            if (attempts++ === 0) firstAt = host.clock.now;
            lastAt = host.clock.now;
            return false;
          },
        })
        .run(desired(3));
      assert.deepEqual(host.runner.switches, [], "never switched");
      return { attempts, waitedMs: lastAt - firstAt, code: result.errorCode };
    } finally {
      host.cleanup();
    }
  }

  test("bounded by preSwitchControllerWait, not by confirmTimeout", async () => {
    const three = await attemptsWith({ preSwitchControllerWait: 3 });
    assert.equal(three.code, "E_CONTROLLER_UNREACHABLE");
    assert.equal(three.waitedMs, 3000);
    const zero = await attemptsWith({ preSwitchControllerWait: 0 });
    assert.equal(zero.attempts, 1, "0 still asks once");
    assert.equal(zero.code, "E_CONTROLLER_UNREACHABLE");
  });

  test("unset, it waits as long as confirmTimeout (the behaviour before the setting)", async () => {
    const unset = await attemptsWith({});
    assert.equal(unset.waitedMs, 120_000);
  });
});

describe("rollback-decision", () => {
  const transaction = (phase: TransactionPhase, extra: Partial<Transaction> = {}): Transaction => ({
    serial: 4,
    deploymentId: "d4",
    next: NEXT,
    previous: PREV,
    strategy: "trial",
    phase,
    startedAtMs: 0,
    deadlineMs: 10_000,
    requireHeartbeat: true,
    failingBefore: [],
    ...extra,
  });

  test("a failed step rolls back only once the system may have changed", () => {
    const kinds = (["fetching", "fetched", "activating", "confirming", "confirmed", "rolling-back"] as const).map((phase) => [
      phase,
      afterFailure(phase, new Error("boom")).kind,
    ]);
    assert.deepEqual(kinds, [
      ["fetching", "stop"],
      ["fetched", "stop"],
      ["activating", "roll-back"],
      ["confirming", "roll-back"],
      ["confirmed", "stop"],
      ["rolling-back", "stop"],
    ]);
    const bootEntry = afterFailure("confirmed", new Error("no space for the boot entry"));
    assert.ok(bootEntry.kind === "stop" && bootEntry.keepNext, "a confirmed system keeps running");
    const switchFailure = afterFailure("activating", new Error("unit failed"));
    assert.ok(switchFailure.kind === "roll-back" && switchFailure.failure.code === "E_ACTIVATION_FAILED");
    const coded = afterFailure("confirming", new FerryError("E_HEALTH_CHECK_FAILED", "x"));
    assert.ok(coded.kind === "roll-back" && coded.failure.code === "E_HEALTH_CHECK_FAILED", "a failure's own code is kept");
  });

  test("resuming: where to carry on, or why to roll back", () => {
    const at = (phase: TransactionPhase, now: number, currentSystem: string) => onResume(transaction(phase), { now, currentSystem });
    assert.deepEqual(at("fetched", 0, PREV), { kind: "continue", from: "fetching" });
    assert.deepEqual(at("activating", 0, NEXT), { kind: "continue", from: "activating" });
    const notUp = at("activating", 0, PREV);
    assert.ok(notUp.kind === "roll-back" && notUp.failure.code === "E_INTERRUPTED");
    assert.deepEqual(at("confirming", 9_999, NEXT), { kind: "continue", from: "confirming" });
    const late = at("confirming", 10_000, NEXT);
    assert.ok(late.kind === "roll-back" && late.failure.code === "E_CONFIRM_TIMEOUT");
    const rebooted = at("confirming", 0, PREV);
    assert.ok(rebooted.kind === "roll-back" && rebooted.failure.code === "E_INTERRUPTED");
    assert.deepEqual(at("confirmed", 99_999, NEXT), { kind: "continue", from: "confirmed" });
    const recorded = onResume(transaction("rolling-back", { failure: { code: "E_HEALTH_CHECK_FAILED", message: "m", output: "o" } }), {
      now: 0,
      currentSystem: NEXT,
    });
    assert.ok(recorded.kind === "roll-back" && recorded.failure.code === "E_HEALTH_CHECK_FAILED" && recorded.failure.output === "o");
    const unknown = onResume(transaction("rolling-back", { failure: { code: "E_FROM_THE_FUTURE", message: "m", output: "" } }), {
      now: 0,
      currentSystem: NEXT,
    });
    assert.ok(unknown.kind === "roll-back" && unknown.failure.code === "E_INTERRUPTED", "an unknown code is not trusted");
  });
});
