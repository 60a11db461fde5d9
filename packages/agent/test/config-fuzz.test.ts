// The agent's configuration comes from a file an operator (or the NixOS
// module) wrote: any JSON value is accepted as a complete configuration or
// refused with E_BAD_CONFIG. FERRY_FUZZ_RUNS raises the number of cases.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { FerryError } from "@ferry/core";
import { parseAgentConfig } from "@ferry/agent";

const RUNS = Number(process.env["FERRY_FUZZ_RUNS"] ?? 300);

const base = {
  controllerUrl: "ws://127.0.0.1:7070/agent",
  hostName: "web-1",
  tokenFile: "/run/keys/ferry-token",
  substituters: ["http://127.0.0.1:7070/cache"],
  trustedPublicKeys: ["fleet-1:wEv/NYJ7A6Hk3E9WJ14vYlNkrIg3CsiUeriPdqCYTCs="],
};

function parsesOrRefuses(raw: unknown): void {
  try {
    const config = parseAgentConfig(raw);
    assert.equal(typeof config.hostName, "string");
  } catch (error) {
    if (error instanceof FerryError && error.code === "E_BAD_CONFIG") return;
    if (error instanceof FerryError && error.code === "E_BAD_HOST_NAME") return;
    throw new Error(`threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)} instead of E_BAD_CONFIG`);
  }
}

test("arbitrary JSON values are a configuration or E_BAD_CONFIG", () => {
  fc.assert(fc.property(fc.jsonValue({ maxDepth: 4 }), parsesOrRefuses), { numRuns: RUNS });
});

test("a valid configuration with one key replaced by an arbitrary value", () => {
  const keys = [...Object.keys(base), "healthChecks", "strategy", "confirmTimeout", "activationTimeout", "logLevel", "keepGenerations"];
  fc.assert(
    fc.property(fc.constantFrom(...keys), fc.jsonValue({ maxDepth: 3 }), (key, value) => parsesOrRefuses({ ...base, [key]: value })),
    { numRuns: RUNS },
  );
});
