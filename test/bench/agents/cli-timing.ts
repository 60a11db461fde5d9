// The real CLI run with its gRPC calls timed (rpc-timing.mjs loaded into it):
// the bench reports the RPC apart from the CLI's start-up.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { exec } from "../../harness/exec.js";
import { FERRY_BIN } from "../../harness/paths.js";

const RPC_TIMING = fileURLToPath(new URL("./rpc-timing.mjs", import.meta.url));

/**
 * Runs the real CLI with its RPC timed (agents/rpc-timing.mjs). Arguments
 * listed in `argsFile` (one per line) are expanded by a shell whose stack
 * limit allows a 50,000-host command line.
 */
export async function timedCli(
  args: string[],
  env: Record<string, string>,
  work: string,
  timeoutMs: number,
  argsFile?: string,
): Promise<{ code: number | null; stdout: string; stderr: string; cliMs: number; rpcMs: number }> {
  const timing = join(work, `rpc-${Date.now()}.jsonl`);
  writeFileSync(timing, "");
  const script = `ulimit -s 65536 2>/dev/null; exec "$@"${argsFile ? ' $(cat "$BENCH_ARGS_FILE")' : ""}`;
  const started = performance.now();
  const result = await exec(["sh", "-c", script, "sh", process.execPath, "--import", RPC_TIMING, FERRY_BIN, ...args], {
    env: { ...process.env, ...env, BENCH_RPC_TIMING_FILE: timing, ...(argsFile ? { BENCH_ARGS_FILE: argsFile } : {}) },
    timeoutMs,
  });
  const cliMs = performance.now() - started;
  const calls = readFileSync(timing, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { method: string; ms: number });
  const rpcMs = calls.reduce((sum, call) => (call.method.endsWith("/GetInfo") ? sum : sum + call.ms), 0);
  return { ...result, cliMs, rpcMs: calls.length > 0 ? rpcMs : NaN };
}

/** Where the engine says a rollout stands ("completed, wave 4 of 4"), or why `ferry rollout status` could not say. */
export async function engineState(rolloutId: string, env: Record<string, string>): Promise<string> {
  const status = await exec([process.execPath, FERRY_BIN, "rollout", "status", rolloutId, "--json"], { env: { ...process.env, ...env }, timeoutMs: 60_000 });
  try {
    const { rollout } = JSON.parse(status.stdout) as { rollout: { state: string; currentWave: number; waveCount: number } };
    return `${rollout.state}, wave ${rollout.currentWave} of ${rollout.waveCount}`;
  } catch {
    return `ferry rollout status failed: ${(status.stderr + status.stdout).replace(/\s+/g, " ").trim().slice(0, 160)}`;
  }
}
