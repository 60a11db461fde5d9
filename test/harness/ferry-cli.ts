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

/** As ferry, but a non-zero exit throws with the output; `where` names the controller in the message. */
export async function mustFerry(args: readonly string[], env: Record<string, string> = {}, timeoutMs?: number, where = ""): Promise<CliResult> {
  const result = await ferry(args, env, timeoutMs);
  if (result.code !== 0) throw new Error(`ferry ${args.join(" ")}${where} exited ${result.code}:\n${result.stdout}\n${result.stderr}`);
  return result;
}

/** A Nix signing key pair made by `ferry keys generate` in `keyDir`. */
export async function generateSigningKey(keyDir: string, name: string): Promise<{ name: string; secretFile: string; publicKey: string }> {
  const out = (await ferry(["keys", "generate", "--name", name, "--out", keyDir, "--json"])).json<{ secretFile: string; publicKey: string }>();
  return { name, secretFile: out.secretFile, publicKey: out.publicKey };
}
