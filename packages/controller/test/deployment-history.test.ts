import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { hostHistory, serialsOf } from "../src/history/deployment-history.js";
import { chooseRollback } from "../src/history/rollback-target.js";
import type { HostEvent } from "../src/store/state-store.js";

const A = "/nix/store/pz5wv3mkbf4bwihvsz8yqydfwb9bfhy5-system-a";
const B = "/nix/store/1zy01hjzwvvia6h9dq5xar88v77fgh9x-system-b";
const C = "/nix/store/2zy01hjzwvvia6h9dq5xar88v77fgh9x-system-c";
const D = "/nix/store/3zy01hjzwvvia6h9dq5xar88v77fgh9x-system-d";

let clock = 1000;
function assigned(serial: number, storePath: string, extra: Record<string, unknown> = {}): HostEvent {
  return {
    atMs: (clock += 10),
    hostName: "web1",
    kind: "desired-assigned",
    data: { serial, storePath, deploymentId: `d-${serial}`, rolloutId: "", requestedBy: "ci", mode: 0, activate: true, heldForWindow: false, ...extra },
  };
}
function result(serial: number, storePath: string, success: boolean, phase: string, errorCode = ""): HostEvent {
  return {
    atMs: (clock += 10),
    hostName: "web1",
    kind: success ? "activation-succeeded" : "activation-failed",
    data: { serial, storePath, phase, errorCode, errorMessage: errorCode ? "it broke" : "" },
  };
}

describe("deployment history outcomes", () => {
  test("each deployment takes the outcome of the last result for its serials; newest first", () => {
    const history = hostHistory([
      assigned(1, A),
      result(1, A, true, "active"),
      assigned(2, B),
      result(2, B, false, "rolled-back", "E_CONFIRM_TIMEOUT"),
      assigned(3, C),
      result(3, C, false, "failed", "E_FETCH_FAILED"),
      assigned(4, D),
    ]);
    assert.deepEqual(
      history.map((entry) => [entry.storePath, entry.outcome, entry.errorCode]),
      [
        [D, "pending", ""],
        [C, "failed", "E_FETCH_FAILED"],
        [B, "rolled-back", "E_CONFIRM_TIMEOUT"],
        [A, "confirmed", ""],
      ],
    );
    assert.equal(history[3]?.requestedBy, "ci");
    assert.ok((history[3]?.finishedAtMs ?? 0) > (history[3]?.atMs ?? 0));
  });

  test("a deployment replaced before any result is superseded; a late result of an older serial is not the newer one's", () => {
    const history = hostHistory([assigned(1, A), assigned(2, B), result(1, A, true, "active")]);
    assert.deepEqual(
      history.map((entry) => entry.outcome),
      ["pending", "confirmed"],
    );
    assert.deepEqual(
      hostHistory([assigned(1, A), assigned(2, B)]).map((entry) => entry.outcome),
      ["pending", "superseded"],
    );
  });

  test("a held deployment is decided by its activation serial, not its fetch-only result; a prefetch is no entry", () => {
    const history = hostHistory([
      assigned(1, A, { activate: false, heldForWindow: true }),
      result(1, A, true, "fetched"),
      // releaseHeld: serial 2 without a new deployment
      result(2, A, true, "boot-pending"),
      assigned(3, B, { activate: false, rolloutId: "r-1", deploymentId: "r-1" }),
      result(3, B, true, "fetched"),
      assigned(4, B, { rolloutId: "r-1", deploymentId: "r-1" }),
      result(4, B, true, "active"),
    ]);
    assert.deepEqual(
      history.map((entry) => [entry.deploymentId, entry.outcome, entry.heldForWindow]),
      [
        ["r-1", "confirmed", false],
        ["d-1", "boot-pending", true],
      ],
    );
  });

  test("events with missing or malformed fields are skipped, not thrown on", () => {
    const history = hostHistory([
      { atMs: 1, hostName: "web1", kind: "desired-assigned", data: { serial: "x" } },
      { atMs: 2, hostName: "web1", kind: "activation-failed", data: {} },
      assigned(5, A),
      result(5, A, false, ""),
    ]);
    assert.deepEqual(
      history.map((entry) => entry.outcome),
      ["failed"],
    );
  });

  test("serialsOf matches the serials a deployment or rollout owned", () => {
    const events = [
      assigned(1, A),
      assigned(2, B, { deploymentId: "r-9", rolloutId: "r-9", activate: false }),
      assigned(3, B, { deploymentId: "r-9", rolloutId: "r-9" }),
      assigned(5, C),
    ];
    const inRollout = serialsOf(events, "r-9");
    assert.deepEqual([1, 2, 3, 4, 5].map(inRollout), [false, true, true, true, false]);
    assert.equal(serialsOf(events, "d-5")(7), true);
    assert.equal(serialsOf(events, "nope")(1), false);
  });
});

describe("rollback target", () => {
  const history = hostHistory([
    assigned(1, B),
    result(1, B, true, "active"),
    assigned(2, C),
    result(2, C, true, "active"),
    assigned(3, D),
    result(3, D, false, "rolled-back"),
  ]);

  test("the newest confirmed system other than the running one, even when the previous system is the failed one", () => {
    // D failed and rolled back to C: the host's previousSystem is D now.
    const choice = chooseRollback({ name: "web1", currentSystem: C, previousSystem: D }, history);
    assert.deepEqual(choice, { hostName: "web1", storePath: B, source: "history", onHost: false });
    const usual = chooseRollback({ name: "web1", currentSystem: C, previousSystem: B }, history);
    assert.deepEqual(usual, { hostName: "web1", storePath: B, source: "previous", onHost: true });
  });

  test("a host whose history holds nothing else falls back to what it ran before Ferry", () => {
    const first = hostHistory([assigned(1, B), result(1, B, true, "active")]);
    assert.deepEqual(chooseRollback({ name: "web1", currentSystem: B, previousSystem: A }, first), {
      hostName: "web1",
      storePath: A,
      source: "previous",
      onHost: true,
    });
  });

  test("no previous system, or only a failed one → E_NO_PREVIOUS_SYSTEM", () => {
    assert.throws(() => chooseRollback({ name: "web1", currentSystem: A, previousSystem: "" }, []), { code: "E_NO_PREVIOUS_SYSTEM" });
    const failed = hostHistory([assigned(1, B), result(1, B, false, "rolled-back")]);
    assert.throws(() => chooseRollback({ name: "web1", currentSystem: A, previousSystem: B }, failed), { code: "E_NO_PREVIOUS_SYSTEM" });
  });

  test("--to takes a confirmed path of the history or the previous system, nothing else", () => {
    assert.equal(chooseRollback({ name: "web1", currentSystem: C, previousSystem: D }, history, B).storePath, B);
    assert.throws(() => chooseRollback({ name: "web1", currentSystem: C, previousSystem: D }, history, A), { code: "E_NOT_IN_HISTORY" });
    assert.deepEqual(chooseRollback({ name: "web1", currentSystem: C, previousSystem: D }, history, D), {
      hostName: "web1",
      storePath: D,
      source: "given",
      onHost: true,
    });
  });
});
