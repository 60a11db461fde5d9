// The deadline the operator API shows is the one the engine enforces (the
// engine calls the same function; rollout-engine.test.ts checks enforcement).
import { test } from "node:test";
import assert from "node:assert/strict";
import { ActivationMode } from "@ferry/protocol";
import { toRolloutMessage } from "../src/api/rollout-service.js";
import { phaseDeadlineAtMs } from "../src/rollouts/deadline.js";
import { DEFAULT_POLICY } from "../src/rollouts/default-policy.js";
import type { RolloutRecord } from "../src/store/rollout-records.js";

const START = Date.parse("2026-11-22T12:00:00Z");
const MINUTE = 60_000;

function record(patch: Partial<RolloutRecord>): RolloutRecord {
  return {
    id: "r-1",
    state: "running",
    environment: "",
    manifestDigest: "",
    policy: { ...DEFAULT_POLICY, progressDeadlineMs: 10 * MINUTE, prefetchTimeoutMs: 30 * MINUTE },
    mode: ActivationMode.ACTIVATION_MODE_UNSPECIFIED,
    waveCount: 2,
    currentWave: 1,
    reason: "",
    requestedBy: "test",
    createdAtMs: START,
    updatedAtMs: START,
    phaseStartedAtMs: START + MINUTE,
    resumeAtMs: 0,
    hosts: [],
    ...patch,
  };
}

test("prefetching: the prefetch timeout from the start of the phase", () => {
  assert.equal(phaseDeadlineAtMs(record({ state: "prefetching", currentWave: 0 })), START + 31 * MINUTE);
});

test("a running wave: its progress deadline, counted from when the wave starts (after any pause)", () => {
  assert.equal(phaseDeadlineAtMs(record({})), START + 11 * MINUTE);
  const pausing = record({ resumeAtMs: START + 5 * MINUTE, phaseStartedAtMs: START + 5 * MINUTE });
  assert.equal(phaseDeadlineAtMs(pausing), START + 15 * MINUTE);
});

test("nothing is timed without a progress deadline, while paused, at a gate, or after the end", () => {
  assert.equal(phaseDeadlineAtMs(record({ policy: { ...DEFAULT_POLICY, progressDeadlineMs: 0 } })), 0);
  for (const state of ["paused", "waiting-gate", "completed", "aborted"] as const) assert.equal(phaseDeadlineAtMs(record({ state })), 0, state);
});

test("the operator API carries it", () => {
  assert.equal(toRolloutMessage(record({})).phaseDeadlineAtMs, START + 11 * MINUTE);
});
