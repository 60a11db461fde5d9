import { FerryError, assertHostName, assertStorePath } from "@ferry/core";
import { parseVerb } from "../args.js";
import { VERBS } from "../spec/index.js";
import { withConnection } from "../client.js";
import { createOutput, hostStatusJson, table } from "../output.js";

/** `ferry rollback HOST…`: each host's previous confirmed system, as a new deployment. */
export async function rollbackCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS.rollback, args);
  const hostNames = positionals.map(assertHostName);
  let toStorePath = "";
  if (values.to !== undefined) {
    if (/^\d+$/.test(values.to)) {
      throw new FerryError("E_GENERATION_UNKNOWN", `the controller does not know the generation numbers of hosts; pass a store path instead of ${values.to}`);
    }
    toStorePath = assertStorePath(values.to);
  }
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    const response = await connection.call(connection.client.rollback, { hostNames, toStorePath });
    out.result({ deploymentId: response.deploymentId, targets: response.targets, hosts: response.hosts.map(hostStatusJson) }, () => {
      const rows = response.targets.map((target) => [target.hostName, target.storePath, target.source]);
      return (
        `deployment ${response.deploymentId}: rolling back ${rows.length} host(s)\n` +
        table(["HOST", "SYSTEM", "FROM"], rows) +
        `follow it with: ferry status ${hostNames.join(" ")}  (hosts that require signed intents refuse it: E_INTENT_UNSIGNED)\n`
      );
    });
    return 0;
  });
}
