import { FerryError, assertHostName, assertTag } from "@ferry/core";
import { parseVerb, requireString } from "../args.js";
import { withConnection } from "../client.js";
import { createOutput, table } from "../output.js";
import { VERBS } from "../spec/index.js";
import { parseDuration } from "../units.js";

export async function windowCommand(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  switch (verb) {
    case "add":
      return windowAdd(rest);
    case "list":
      return windowList(rest);
    case "remove":
      return windowRemove(rest);
    default:
      throw new FerryError("E_BAD_ARGUMENT", `unknown verb 'window ${verb ?? ""}': use add, list or remove`);
  }
}

async function windowAdd(args: string[]): Promise<number> {
  const { values } = parseVerb(VERBS["window add"], args);
  if (Boolean(values.host) === Boolean(values.tag)) throw new FerryError("E_BAD_ARGUMENT", "give exactly one of --host HOST and --tag TAG");
  const window = {
    id: "",
    hostName: values.host ? assertHostName(values.host) : "",
    tag: values.tag ? assertTag(values.tag) : "",
    cron: requireString(values.cron, "--cron"),
    durationMs: parseDuration(requireString(values.duration, "--duration"), "--duration"),
    timezone: values.timezone,
  };
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    const { window: added } = await connection.call(connection.client.addMaintenanceWindow, { window });
    out.result({ window: added }, () => `added maintenance window ${added?.id}\n`);
    return 0;
  });
}

async function windowList(args: string[]): Promise<number> {
  const { values } = parseVerb(VERBS["window list"], args);
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    const { windows } = await connection.call(connection.client.listMaintenanceWindows, {});
    out.result({ windows }, () =>
      table(
        ["ID", "APPLIES TO", "CRON", "DURATION", "TIME ZONE"],
        windows.map((w) => [w.id, w.hostName ? `host ${w.hostName}` : `tag ${w.tag}`, w.cron, `${Math.round(w.durationMs / 60_000)}m`, w.timezone || "local"]),
      ),
    );
    return 0;
  });
}

async function windowRemove(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS["window remove"], args);
  const id = positionals[0] as string;
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    await connection.call(connection.client.removeMaintenanceWindow, { id });
    out.result({ removed: id }, () => `removed maintenance window ${id}\n`);
    return 0;
  });
}
