import { afterEach, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FerryError, silentLogger } from "@ferry/core";
import { StateFile } from "../src/state-file.js";
import { capturingLogger, NEXT, PREV } from "./helpers/fake-host.js";

const IN_FLIGHT = {
  version: 1,
  appliedSerial: 41,
  lastResult: null,
  transaction: {
    serial: 42,
    deploymentId: "d42",
    next: NEXT,
    previous: PREV,
    strategy: "trial",
    phase: "confirming",
    startedAtMs: 1,
    deadlineMs: 2,
    requireHeartbeat: true,
    failingBefore: [],
  },
};

describe("StateFile: a damaged state.json falls back to its backup", () => {
  let dir: string;
  const main = (): string => join(dir, "state.json");
  const backup = (): string => join(dir, "state.json.backup");
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "ferry-state-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test("every write leaves two identical copies", () => {
    const state = new StateFile(dir, silentLogger());
    state.update((draft) => {
      draft.appliedSerial = 3;
    });
    assert.equal(readFileSync(backup(), "utf8"), readFileSync(main(), "utf8"));
    assert.equal(JSON.parse(readFileSync(backup(), "utf8")).appliedSerial, 3);
  });

  for (const [damage, write] of [
    ["truncated", (path: string) => writeFileSync(path, JSON.stringify(IN_FLIGHT).slice(0, 40))],
    ["zeroed", (path: string) => writeFileSync(path, Buffer.alloc(300))],
    ["not a state", (path: string) => writeFileSync(path, JSON.stringify({ version: 1, appliedSerial: "many", transaction: null, lastResult: null }))],
    ["missing", (path: string) => rmSync(path)],
  ] as const) {
    test(`state.json ${damage}: the in-flight trial and the applied serial come back from the backup`, () => {
      const first = new StateFile(dir, silentLogger());
      first.update((draft) => Object.assign(draft, structuredClone(IN_FLIGHT)));
      write(main());
      const { log, events } = capturingLogger();
      const state = new StateFile(dir, log);
      assert.equal(state.state.appliedSerial, 41);
      assert.equal(state.state.transaction?.phase, "confirming");
      assert.equal(state.state.transaction?.serial, 42);
      assert.ok(events.some((event) => event["code"] === "E_STATE_CORRUPT"));
      if (damage !== "missing")
        assert.equal(readdirSync(dir).filter((name) => name.startsWith("state.json.corrupt-")).length, 1, "the damaged file is kept aside");
    });
  }

  test("neither copy readable: refuses with E_STATE_UNREADABLE and leaves both files as they are", () => {
    writeFileSync(main(), "{ not json");
    writeFileSync(backup(), "");
    let caught: unknown;
    try {
      new StateFile(dir, silentLogger());
    } catch (error) {
      caught = error;
    }
    assert.ok(caught instanceof FerryError, String(caught));
    assert.equal(caught.code, "E_STATE_UNREADABLE");
    assert.match(caught.message, /state\.json .*state\.json\.backup/);
    assert.equal(readFileSync(main(), "utf8"), "{ not json");
    assert.ok(existsSync(backup()));
  });

  test("a damaged backup with state.json gone is refused too, not taken for a fresh host", () => {
    writeFileSync(backup(), "garbage");
    assert.throws(
      () => new StateFile(dir, silentLogger()),
      (error: unknown) => error instanceof FerryError && error.code === "E_STATE_UNREADABLE",
    );
  });

  test("no copy at all is a fresh host", () => {
    const state = new StateFile(dir, silentLogger());
    assert.deepEqual(state.state, { version: 1, appliedSerial: 0, transaction: null, lastResult: null });
  });

  test("a good state.json wins over a damaged backup", () => {
    writeFileSync(main(), JSON.stringify(IN_FLIGHT));
    writeFileSync(backup(), "garbage");
    assert.equal(new StateFile(dir, silentLogger()).state.appliedSerial, 41);
  });
});
