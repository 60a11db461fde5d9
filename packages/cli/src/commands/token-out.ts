import { FerryError, writeFileAtomic } from "@ferry/core";
import type { Output } from "../output.js";

/**
 * Where a new secret goes: a file (0600, written atomically) or, only when
 * asked for with `-`, stdout. Required, because a secret printed by default
 * ends up in CI logs and terminal scrollback.
 */
export function requireTokenOut(value: string | undefined, usage: string): string {
  if (value === undefined || value === "") {
    throw new FerryError(
      "E_BAD_ARGUMENT",
      `--token-out FILE is required (or --token-out - to print the token on stdout): it is shown only once. usage: ${usage}`,
    );
  }
  return value;
}

/**
 * Delivers `secret` as `tokenOut` says and prints the result: with a file,
 * `data` and `human` never contain the secret; with `-`, JSON output carries
 * it under `secretKey` and human output is the secret alone on stdout (the
 * message goes to stderr), so `… --token-out - > file` works.
 */
export function deliverSecret(out: Output, tokenOut: string, secret: string, secretKey: string, data: Record<string, unknown>, human: string): void {
  if (tokenOut === "-") {
    out.note(human);
    out.result({ ...data, [secretKey]: secret }, () => `${secret}\n`);
    return;
  }
  writeFileAtomic(tokenOut, `${secret}\n`, 0o600);
  out.result({ ...data, tokenFile: tokenOut }, () => `${human}; the token is in ${tokenOut}\n`);
}
