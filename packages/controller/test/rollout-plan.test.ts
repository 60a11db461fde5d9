// Table-driven tests of the wave planner, the threshold logic and policy
// validation: pure functions, no I/O.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { FerryError } from "@ferry/core";
import { DEFAULT_POLICY } from "../src/rollouts/default-policy.js";
import { planWaves, resolveQuantity, thresholdReached, validatePolicy } from "../src/rollouts/plan.js";
import type { Quantity, RolloutPolicy } from "../src/store/rollout-records.js";

const n = (value: number): Quantity => ({ value, percent: false });
const pct = (value: number): Quantity => ({ value, percent: true });
const fleet = (count: number): string[] => Array.from({ length: count }, (_, i) => `h${String(i + 1).padStart(2, "0")}`);

function throwsBadArgument(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof FerryError, `expected a FerryError, got ${String(error)}`);
    assert.equal(error.code, "E_BAD_ARGUMENT");
    assert.match(error.message, pattern);
    return true;
  });
}

describe("resolveQuantity", () => {
  const cases: { quantity: Quantity; total: number; expected: number }[] = [
    { quantity: n(0), total: 8, expected: 0 },
    { quantity: n(3), total: 8, expected: 3 },
    // A count is taken as given, even above the total: callers clamp.
    { quantity: n(12), total: 8, expected: 12 },
    { quantity: pct(0), total: 8, expected: 0 },
    { quantity: pct(10), total: 8, expected: 1 },
    { quantity: pct(25), total: 8, expected: 2 },
    { quantity: pct(33), total: 10, expected: 4 },
    { quantity: pct(50), total: 7, expected: 4 },
    { quantity: pct(100), total: 8, expected: 8 },
    { quantity: pct(100), total: 1, expected: 1 },
    { quantity: pct(1), total: 1, expected: 1 },
    { quantity: pct(1), total: 1000, expected: 10 },
    { quantity: pct(1), total: 1001, expected: 11 },
    { quantity: pct(20), total: 10, expected: 2 },
    { quantity: pct(50), total: 0, expected: 0 },
  ];
  for (const { quantity, total, expected } of cases) {
    test(`${quantity.value}${quantity.percent ? "%" : ""} of ${total} is ${expected}`, () => {
      assert.equal(resolveQuantity(quantity, total), expected);
    });
  }
});

describe("planWaves", () => {
  const cases: { name: string; hosts: number; canary: Quantity; batch: Quantity; sizes: number[] }[] = [
    { name: "no hosts, no waves", hosts: 0, canary: n(1), batch: n(2), sizes: [] },
    { name: "1 host, defaults: one wave", hosts: 1, canary: n(0), batch: n(0), sizes: [1] },
    { name: "1 host with a canary of 1: the canary is the whole fleet", hosts: 1, canary: n(1), batch: n(1), sizes: [1] },
    { name: "1 host with 10% canary rounds up to 1", hosts: 1, canary: pct(10), batch: pct(10), sizes: [1] },
    { name: "canary 0, batch 0: all in one wave", hosts: 8, canary: n(0), batch: n(0), sizes: [8] },
    { name: "canary 0, batch 3", hosts: 8, canary: n(0), batch: n(3), sizes: [3, 3, 2] },
    { name: "canary 1, batch 0: the rest in one wave", hosts: 8, canary: n(1), batch: n(0), sizes: [1, 7] },
    { name: "canary 0%, batch 0%: one wave", hosts: 8, canary: pct(0), batch: pct(0), sizes: [8] },
    { name: "canary larger than the fleet is clamped to it", hosts: 3, canary: n(10), batch: n(1), sizes: [3] },
    { name: "canary 100% is the whole fleet", hosts: 4, canary: pct(100), batch: n(1), sizes: [4] },
    { name: "canary 10% of 8 is 1, batch 25% of 8 is 2", hosts: 8, canary: pct(10), batch: pct(25), sizes: [1, 2, 2, 2, 1] },
    // Batch percentages are of the whole fleet, not of what is left after the canary.
    { name: "canary 1, batch 33% of 10 is 4", hosts: 10, canary: n(1), batch: pct(33), sizes: [1, 4, 4, 1] },
    { name: "batch 100%: one wave after the canary", hosts: 8, canary: n(2), batch: pct(100), sizes: [2, 6] },
    { name: "batch 1: one host per wave", hosts: 4, canary: n(1), batch: n(1), sizes: [1, 1, 1, 1] },
    { name: "batch larger than the rest", hosts: 5, canary: n(1), batch: n(50), sizes: [1, 4] },
  ];
  for (const { name, hosts, canary, batch, sizes } of cases) {
    test(name, () => {
      const names = fleet(hosts);
      const waves = planWaves(names, { canary, batch });
      assert.deepEqual(
        waves.map((wave) => wave.length),
        sizes,
      );
      // Every host exactly once, in the given order, no empty wave.
      assert.deepEqual(waves.flat(), names);
      assert.ok(waves.every((wave) => wave.length > 0));
    });
  }

  test("does not modify its input and keeps the order given", () => {
    const names = ["zeta", "alpha", "mid"];
    const copy = [...names];
    assert.deepEqual(planWaves(names, { canary: n(1), batch: n(1) }), [["zeta"], ["alpha"], ["mid"]]);
    assert.deepEqual(names, copy);
  });
});

describe("thresholdReached", () => {
  const cases: {
    name: string;
    threshold: Quantity;
    minExecuted: number;
    total: number;
    executed: number;
    failed: number;
    expected: boolean;
  }[] = [
    { name: "no failure", threshold: n(1), minExecuted: 1, total: 8, executed: 3, failed: 0, expected: false },
    { name: "1 failure with threshold 1", threshold: n(1), minExecuted: 1, total: 8, executed: 1, failed: 1, expected: true },
    { name: "below a count threshold", threshold: n(3), minExecuted: 1, total: 8, executed: 5, failed: 2, expected: false },
    { name: "at a count threshold", threshold: n(3), minExecuted: 1, total: 8, executed: 5, failed: 3, expected: true },
    { name: "above a count threshold", threshold: n(3), minExecuted: 1, total: 8, executed: 6, failed: 4, expected: true },
    { name: "minExecuted not yet reached", threshold: n(1), minExecuted: 4, total: 8, executed: 3, failed: 3, expected: false },
    { name: "minExecuted just reached", threshold: n(1), minExecuted: 4, total: 8, executed: 4, failed: 1, expected: true },
    { name: "minExecuted 0 and nothing executed", threshold: n(1), minExecuted: 0, total: 8, executed: 0, failed: 0, expected: false },
    // 25% of 8 is 2 failed hosts.
    { name: "25% of 8: 1 failure is below", threshold: pct(25), minExecuted: 1, total: 8, executed: 4, failed: 1, expected: false },
    { name: "25% of 8: 2 failures reach it", threshold: pct(25), minExecuted: 1, total: 8, executed: 4, failed: 2, expected: true },
    // 10% of 8 rounds up to 1.
    { name: "10% of 8 rounds up to 1 failure", threshold: pct(10), minExecuted: 1, total: 8, executed: 1, failed: 1, expected: true },
    // 33% of 10 is 4.
    { name: "33% of 10: 3 failures are below", threshold: pct(33), minExecuted: 1, total: 10, executed: 9, failed: 3, expected: false },
    { name: "33% of 10: 4 failures reach it", threshold: pct(33), minExecuted: 1, total: 10, executed: 9, failed: 4, expected: true },
    { name: "100% of 4: 3 failures are below", threshold: pct(100), minExecuted: 1, total: 4, executed: 4, failed: 3, expected: false },
    { name: "100% of 4: all 4 failing reach it", threshold: pct(100), minExecuted: 1, total: 4, executed: 4, failed: 4, expected: true },
    // A threshold of 0 would abort on nothing at all: it counts as 1.
    { name: "threshold 0 counts as 1: no failure", threshold: n(0), minExecuted: 1, total: 8, executed: 2, failed: 0, expected: false },
    { name: "threshold 0 counts as 1: 1 failure", threshold: n(0), minExecuted: 1, total: 8, executed: 2, failed: 1, expected: true },
    { name: "threshold 0% counts as 1", threshold: pct(0), minExecuted: 1, total: 8, executed: 1, failed: 1, expected: true },
    { name: "1 host fleet, 50%: its failure reaches it", threshold: pct(50), minExecuted: 1, total: 1, executed: 1, failed: 1, expected: true },
  ];
  for (const { name, threshold, minExecuted, total, executed, failed, expected } of cases) {
    test(name, () => {
      assert.equal(thresholdReached({ failureThreshold: threshold, minExecuted }, total, executed, failed), expected);
    });
  }
});

describe("validatePolicy", () => {
  const policy = (patch: Partial<RolloutPolicy>): RolloutPolicy => ({ ...DEFAULT_POLICY, ...patch });

  test("the default policy is valid and returned as is", () => {
    const given = policy({});
    assert.equal(validatePolicy(given), given);
  });

  const valid: { name: string; patch: Partial<RolloutPolicy> }[] = [
    { name: "100% everywhere", patch: { canary: pct(100), batch: pct(100), failureThreshold: pct(100) } },
    { name: "counts above 100 are fine", patch: { canary: n(250), batch: n(500), failureThreshold: n(101) } },
    { name: "0% quantities", patch: { canary: pct(0), batch: pct(0), failureThreshold: pct(0) } },
    { name: "maxUnavailable 1", patch: { maxUnavailable: 1 } },
    { name: "large maxUnavailable", patch: { maxUnavailable: 1000 } },
  ];
  for (const { name, patch } of valid) {
    test(`accepts ${name}`, () => {
      assert.doesNotThrow(() => validatePolicy(policy(patch)));
    });
  }

  const invalid: { name: string; patch: Partial<RolloutPolicy>; pattern: RegExp }[] = [
    { name: "maxUnavailable 0", patch: { maxUnavailable: 0 }, pattern: /--max-unavailable/ },
    { name: "maxUnavailable negative", patch: { maxUnavailable: -1 }, pattern: /--max-unavailable/ },
    { name: "canary above 100%", patch: { canary: pct(101) }, pattern: /--canary cannot exceed 100%/ },
    { name: "batch above 100%", patch: { batch: pct(150) }, pattern: /--batch cannot exceed 100%/ },
    { name: "failure threshold above 100%", patch: { failureThreshold: pct(101) }, pattern: /--failure-threshold cannot exceed 100%/ },
  ];
  for (const { name, patch, pattern } of invalid) {
    test(`refuses ${name} with E_BAD_ARGUMENT`, () => {
      throwsBadArgument(() => validatePolicy(policy(patch)), pattern);
    });
  }
});
