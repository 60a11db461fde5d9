// A host's page shows the agent's newest forwarded lines, escaped.
import { test } from "node:test";
import assert from "node:assert/strict";
import { HostPhase, type HostLogLine } from "@ferry/protocol";
import { hostPage } from "../src/dashboard/host-page.js";
import type { HostRecord } from "../src/store/state-store.js";

const host = {
  name: "web-1",
  tags: [],
  desiredSystem: "",
  currentSystem: "",
  previousSystem: "",
  phase: HostPhase.HOST_PHASE_ACTIVE,
  deploymentId: "",
  desiredSerial: 0,
  appliedSerial: 0,
  activationMode: 0,
  lastSeenMs: 0,
  lastErrorCode: "",
  lastErrorMessage: "",
  lastErrorOutput: "",
  agentVersion: "0.1.0",
  checksFailingBeforeAndAfter: [],
  checksRun: 0,
} as unknown as HostRecord;
const link = { isOnline: () => true, lastSeenMs: () => 0 };
const line = (i: number, message: string): HostLogLine => ({
  atMs: i * 1000,
  hostName: "web-1",
  level: "info",
  message,
  serial: 3,
  rolloutId: "",
  fieldsJson: "",
});

test("the newest 50 forwarded lines, escaped; none says how to follow them", () => {
  const lines = Array.from({ length: 60 }, (_, i) => line(i, i === 59 ? "<script>alert(1)</script>" : `line ${i}`));
  const page = hostPage(host, [], link, 0, lines).toString();
  assert.ok(!page.includes("line 9\n") && page.includes("line 10"), "only the newest 50");
  assert.ok(page.includes("&lt;script&gt;alert(1)&lt;/script&gt;"));
  assert.ok(!page.includes("<script>alert"));
  assert.match(hostPage(host, [], link, 0, []).toString(), /ferry logs web-1 --follow/);
});
