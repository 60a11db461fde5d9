import type { AgentState } from "./state-file.js";

const PHASES = new Set(["fetching", "fetched", "activating", "confirming", "confirmed", "rolling-back"]);
const STRATEGIES = new Set(["trial", "switch", "boot", "test"]);

type Shape = Record<string, unknown>;

const isObject = (value: unknown): value is Shape => typeof value === "object" && value !== null && !Array.isArray(value);
const isCount = (value: unknown): boolean => typeof value === "number" && Number.isSafeInteger(value) && value >= 0;

function expect(ok: boolean, what: string): void {
  if (!ok) throw new Error(what);
}

function checkTransaction(value: unknown): void {
  if (value === null || value === undefined) return;
  expect(isObject(value), "transaction is not an object");
  const t = value as Shape;
  expect(isCount(t["serial"]), "transaction.serial is not a serial");
  expect(typeof t["deploymentId"] === "string", "transaction.deploymentId is not a string");
  expect(typeof t["next"] === "string" && t["next"] !== "", "transaction.next is not a store path");
  expect(typeof t["previous"] === "string", "transaction.previous is not a string");
  expect(STRATEGIES.has(t["strategy"] as string), "transaction.strategy is unknown");
  expect(PHASES.has(t["phase"] as string), "transaction.phase is unknown");
  expect(typeof t["startedAtMs"] === "number" && typeof t["deadlineMs"] === "number", "transaction times are not numbers");
  expect(typeof t["requireHeartbeat"] === "boolean", "transaction.requireHeartbeat is not a boolean");
  expect(
    Array.isArray(t["failingBefore"]) && (t["failingBefore"] as unknown[]).every((name) => typeof name === "string"),
    "transaction.failingBefore is not a list",
  );
}

function checkResult(value: unknown): void {
  if (value === null || value === undefined) return;
  expect(isObject(value), "lastResult is not an object");
  const r = value as Shape;
  expect(isCount(r["serial"]) && typeof r["phase"] === "number" && typeof r["storePath"] === "string", "lastResult lacks serial, phase or storePath");
}

/**
 * Parses one stored copy of the agent state, or throws saying what is wrong.
 * Shape only: a state that parses here is one the agent itself could have written.
 */
export function parseAgentState(text: string): AgentState {
  const parsed: unknown = JSON.parse(text);
  expect(isObject(parsed), "not a JSON object");
  const state = parsed as Shape;
  expect(state["version"] === 1, `unknown state version ${JSON.stringify(state["version"])}`);
  expect(isCount(state["appliedSerial"]), "appliedSerial is not a serial");
  checkTransaction(state["transaction"]);
  checkResult(state["lastResult"]);
  const restart = state["agentRestart"];
  expect(
    restart === undefined || restart === null || (isObject(restart) && typeof restart["from"] === "string" && typeof restart["to"] === "string"),
    "agentRestart lacks from or to",
  );
  return {
    ...(parsed as unknown as AgentState),
    transaction: (state["transaction"] ?? null) as AgentState["transaction"],
    lastResult: (state["lastResult"] ?? null) as AgentState["lastResult"],
  };
}
