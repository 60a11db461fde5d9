// `ferry agent --controller-url`: repeated or comma-separated, it gives the
// same configuration as the file's controllerUrl or controllerUrls.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compileAgentConfig, loadAgentConfig } from "@ferry/agent";
import { controllerUrlOverrides } from "../src/commands/agent-run.js";

const A = "wss://ctl-a.example/agent";
const B = "wss://ctl-b.example/agent";

test("one URL is controllerUrl, several (repeated or comma-separated) are controllerUrls", () => {
  assert.deepEqual(controllerUrlOverrides([]), {});
  assert.deepEqual(controllerUrlOverrides([A]), { controllerUrl: A, controllerUrls: undefined });
  assert.deepEqual(controllerUrlOverrides([A, B]), { controllerUrl: undefined, controllerUrls: [A, B] });
  assert.deepEqual(controllerUrlOverrides([`${A}, ${B}`]), { controllerUrl: undefined, controllerUrls: [A, B] });
});

test("the flag replaces whichever key the file holds, without clashing with it", () => {
  const dir = mkdtempSync(join(tmpdir(), "ferry-agent-flags-"));
  try {
    const file = join(dir, "agent.json");
    const base = { hostName: "web1", trustedPublicKeys: ["ferry-1:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="] };
    writeFileSync(file, JSON.stringify({ ...base, controllerUrl: A }));
    assert.deepEqual(compileAgentConfig(loadAgentConfig(file, controllerUrlOverrides([`${A},${B}`]))).controllerUrls, [A, B]);
    writeFileSync(file, JSON.stringify({ ...base, controllerUrls: [A, B] }));
    assert.deepEqual(compileAgentConfig(loadAgentConfig(file, controllerUrlOverrides([B]))).controllerUrls, [B]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
