import { FerryError, isErrorCode, readSignedIntent } from "@ferry/core";
import { parseVerb, positiveSeconds } from "../args.js";
import { VERBS } from "../spec/index.js";
import { INTENT_EXPIRY, intentExpiryMs, intentKey, readIntentsFile, signTargets } from "../intents.js";
import { withConnection } from "../client.js";
import { createOutput } from "../output.js";
import { parseTarget } from "./deploy.js";

export async function dryActivateCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS["dry-activate"], args);
  const target = parseTarget(positionals[0] as string);
  // A host that requires signed intents runs a dry run only with an intent of mode dry-activate for it.
  const key = intentKey(values);
  const intent = key
    ? signTargets([target], "dry-activate", key, intentExpiryMs(values, INTENT_EXPIRY.dryActivate))[0]
    : values.intents === undefined
      ? undefined
      : readIntentsFile(values.intents).find((signed) => readSignedIntent(signed).hostName === target.hostName);
  if (values.intents !== undefined && !intent) throw new FerryError("E_BAD_ARGUMENT", `${values.intents} holds no intent for ${target.hostName}`);
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    const timeoutMs = positiveSeconds(values.timeout, "--timeout") * 1000;
    const response = await connection.call(connection.client.dryActivate, { ...target, timeoutMs, intent });
    if (!response.success) {
      throw new FerryError(isErrorCode(response.errorCode) ? response.errorCode : "E_ACTIVATION_FAILED", `${target.hostName}: ${response.errorMessage}`, {
        output: response.output,
      });
    }
    out.result({ host: target.hostName, storePath: target.storePath, ...response }, () => response.output);
    return 0;
  });
}
