// The reconciler's re-send of the last result after a reconnect.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "@ferry/core";
import { HostPhase, encodeAgentFrame, decodeAgentFrame, type AgentBody } from "@ferry/protocol";
import type { AgentSettings } from "../src/settings.js";
import { Reconciler, type ReconcilerLink, type ReconcilerTransaction } from "../src/reconciler.js";
import { StateFile } from "../src/state-file.js";
import type { IntentGate } from "../src/intent-policy.js";

/** Re-sending a result checks no intent. */
const openIntentGate = {} as IntentGate;
const SYSTEM = "/nix/store/pz5wv3mkbf4bwihvsz8yqydfwb9bfhy5-nixos-system-web1-new";
const dir = mkdtempSync(join(tmpdir(), "ferry-reconciler-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("a last result stored by an older agent (without the check fields) is re-sent as a frame that encodes", () => {
  // As an agent from before checksFailingBeforeAndAfter/checksRun existed wrote it.
  const lastResult = {
    hostName: "web1",
    serial: 4,
    storePath: SYSTEM,
    success: true,
    phase: HostPhase.HOST_PHASE_ACTIVE,
    errorCode: "",
    errorMessage: "",
    output: "",
    currentSystem: SYSTEM,
    finishedAtMs: 1,
  };
  writeFileSync(join(dir, "state.json"), JSON.stringify({ version: 1, appliedSerial: 4, transaction: null, lastResult }));
  const frames: Uint8Array[] = [];
  const link = { send: (body: AgentBody) => frames.push(encodeAgentFrame(body)) } as unknown as ReconcilerLink;
  const transaction = { currentSystem: () => SYSTEM } as unknown as ReconcilerTransaction;
  const reconciler = new Reconciler(transaction, new StateFile(dir, silentLogger()), link, {} as AgentSettings, silentLogger(), openIntentGate);
  reconciler.onConnected();
  assert.equal(frames.length, 1);
  const { body } = decodeAgentFrame(frames[0] as Uint8Array);
  assert.equal(body.$case, "result");
  if (body.$case === "result") {
    assert.equal(body.value.serial, 4);
    assert.deepEqual(body.value.checksFailingBeforeAndAfter, []);
    assert.equal(body.value.checksRun, 0);
  }
});
