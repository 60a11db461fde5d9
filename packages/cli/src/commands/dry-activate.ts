import { FerryError, isErrorCode, readSignedIntent } from "@ferry/core";
import { CONNECTION_OPTIONS, parse, positiveSeconds } from "../args.js";
import { withConnection } from "../client.js";
import { createOutput } from "../output.js";
import { parseTarget } from "./deploy.js";
import { INTENT_EXPIRY, INTENT_OPTIONS, intentExpiryMs, intentKey, readIntentsFile, signTargets } from "../intents.js";

export async function dryActivateCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...CONNECTION_OPTIONS, timeout: { type: "string" }, ...INTENT_OPTIONS });
  if (positionals.length !== 1)
    throw new FerryError("E_BAD_ARGUMENT", "usage: ferry dry-activate HOST=STOREPATH [--intent-key-file KEY | --intents FILE] [--timeout SECONDS]");
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
    const timeoutMs = positiveSeconds(values.timeout, "--timeout", 600) * 1000;
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
