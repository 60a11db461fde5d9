import { exec, type ExecResult } from "./exec.js";
import { FERRY_BIN } from "./paths.js";

export interface CliResult extends ExecResult {
  json: <T = Record<string, unknown>>() => T;
}

/** Runs the real `ferry` CLI as a user would. */
export async function ferry(args: readonly string[], env: Record<string, string> = {}, timeoutMs = 120_000, cwd?: string): Promise<CliResult> {
  const result = await exec([process.execPath, FERRY_BIN, ...args], { env: { ...process.env, ...env }, timeoutMs, cwd });
  return {
    ...result,
    json<T>() {
      try {
        return JSON.parse(result.stdout) as T;
      } catch {
        throw new Error(`ferry ${args.join(" ")} printed no JSON (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
      }
    },
  };
}
