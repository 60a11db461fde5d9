// Agent-channel frames from an untrusted peer: any bytes decode to a frame
// with a body, or are refused with a FrameError; nothing else is thrown.
// FERRY_FUZZ_RUNS raises the number of cases.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { FrameError, HostPhase, decodeAgentFrame, decodeControllerFrame, encodeAgentFrame } from "@ferry/protocol";

const RUNS = Number(process.env["FERRY_FUZZ_RUNS"] ?? 300);

function decodesOrRefuses(decode: () => { body: unknown }): void {
  try {
    assert.ok(decode().body !== undefined);
  } catch (error) {
    if (error instanceof FrameError) return;
    throw new Error(`threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)} instead of a FrameError`);
  }
}

const valid = encodeAgentFrame({
  $case: "heartbeat",
  value: {
    sequence: 7,
    sentAtMs: 1_700_000_000_000,
    phase: HostPhase.HOST_PHASE_ACTIVE,
    currentSystem: "/nix/store/pz5wv3mkbf4bwihvsz8yqydfwb9bfhy5-nixos-system-web1",
  },
});

test("arbitrary bytes and mutated frames decode or are refused with a FrameError", () => {
  const mutated = fc
    .tuple(fc.nat({ max: valid.length }), fc.nat({ max: 8 }), fc.uint8Array({ maxLength: 16 }))
    .map(([at, cut, insert]) => Uint8Array.from([...valid.subarray(0, at), ...insert, ...valid.subarray(at + cut)]));
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 2048 }), mutated), (bytes) => {
      decodesOrRefuses(() => decodeAgentFrame(bytes));
      decodesOrRefuses(() => decodeControllerFrame(bytes));
    }),
    { numRuns: RUNS },
  );
});

test("a length prefix claiming more than the frame holds is refused, not allocated", () => {
  // Field 2 (the body oneof) as a length-delimited value claiming 2^31 bytes.
  const lie = Uint8Array.from([0x08, 0x01, 0x12, 0xff, 0xff, 0xff, 0xff, 0x07, 0x00]);
  assert.throws(() => decodeAgentFrame(lie), FrameError);
});
