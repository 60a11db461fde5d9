import { FerryError, assertHostName, assertTag } from "@ferry/core";
import { CONNECTION_OPTIONS, parse, requireString } from "../args.js";
import { withConnection } from "../client.js";
import { createOutput, table } from "../output.js";
import { parseDuration } from "../units.js";

export async function windowCommand(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  const { values, positionals } = parse(rest, {
    ...CONNECTION_OPTIONS,
    host: { type: "string" },
    tag: { type: "string" },
    cron: { type: "string" },
    duration: { type: "string" },
    timezone: { type: "string", default: "" },
  });
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    switch (verb) {
      case "add": {
        if (Boolean(values.host) === Boolean(values.tag)) throw new FerryError("E_BAD_ARGUMENT", "give exactly one of --host HOST and --tag TAG");
        const { window } = await connection.call(connection.client.addMaintenanceWindow, {
          window: {
            id: "",
            hostName: values.host ? assertHostName(values.host) : "",
            tag: values.tag ? assertTag(values.tag) : "",
            cron: requireString(values.cron, "--cron"),
            durationMs: parseDuration(requireString(values.duration, "--duration"), "--duration"),
            timezone: values.timezone,
          },
        });
        out.result({ window }, () => `added maintenance window ${window?.id}\n`);
        return 0;
      }
      case "list": {
        const { windows } = await connection.call(connection.client.listMaintenanceWindows, {});
        out.result({ windows }, () =>
          table(
            ["ID", "APPLIES TO", "CRON", "DURATION", "TIME ZONE"],
            windows.map((w) => [
              w.id,
              w.hostName ? `host ${w.hostName}` : `tag ${w.tag}`,
              w.cron,
              `${Math.round(w.durationMs / 60_000)}m`,
              w.timezone || "local",
            ]),
          ),
        );
        return 0;
      }
      case "remove": {
        if (positionals.length !== 1) throw new FerryError("E_BAD_ARGUMENT", "usage: ferry window remove ID");
        await connection.call(connection.client.removeMaintenanceWindow, { id: positionals[0] as string });
        out.result({ removed: positionals[0] }, () => `removed maintenance window ${positionals[0]}\n`);
        return 0;
      }
      default:
        throw new FerryError("E_BAD_ARGUMENT", `unknown verb 'window ${verb ?? ""}': use add, list or remove`);
    }
  });
}
