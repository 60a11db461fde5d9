import { FerryError, assertTokenName } from "@ferry/core";
import { parseVerb } from "../args.js";
import { VERBS } from "../spec/index.js";
import { withConnection } from "../client.js";
import { createOutput, table } from "../output.js";
import { parseCount } from "../units.js";
import { accessCall, accessClient } from "./access-client.js";

/** `ferry audit`: which token did what, newest first. */
export async function auditCommand(args: string[]): Promise<number> {
  const { values } = parseVerb(VERBS.audit, args);
  const limit = parseCount(values.limit, "--limit");
  if (limit < 1 || limit > 10_000) throw new FerryError("E_BAD_ARGUMENT", "--limit must be between 1 and 10000");
  const actor = values.token === undefined ? "" : assertTokenName(values.token);
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    const client = accessClient(connection);
    const { entries } = await accessCall(connection, client, client.listAudit, { limit, actor });
    const parsed = entries.map(({ detailJson, ...entry }) => ({ ...entry, at: new Date(entry.atMs).toISOString(), detail: JSON.parse(detailJson) as unknown }));
    out.result({ entries: parsed }, () =>
      table(
        ["WHEN", "TOKEN", "ACTION", "TARGET"],
        parsed.map((entry) => [entry.at.slice(0, 19).replace("T", " "), entry.actor, entry.action, entry.target]),
      ),
    );
    return 0;
  });
}
