import { FerryError, isErrorCode } from "@ferry/core";
import { parseVerb, positiveSeconds } from "../args.js";
import { VERBS } from "../spec/index.js";
import { withConnection } from "../client.js";
import { createOutput } from "../output.js";
import { parseTarget } from "./deploy.js";

export async function dryActivateCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS["dry-activate"], args);
  const target = parseTarget(positionals[0] as string);
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    const timeoutMs = positiveSeconds(values.timeout, "--timeout") * 1000;
    const response = await connection.call(connection.client.dryActivate, { ...target, timeoutMs });
    if (!response.success) {
      throw new FerryError(isErrorCode(response.errorCode) ? response.errorCode : "E_ACTIVATION_FAILED", `${target.hostName}: ${response.errorMessage}`, {
        output: response.output,
      });
    }
    out.result({ host: target.hostName, storePath: target.storePath, ...response }, () => response.output);
    return 0;
  });
}
