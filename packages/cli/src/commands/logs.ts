import { status, type ServiceError } from "@grpc/grpc-js";
import { FerryError, assertHostName } from "@ferry/core";
import type { HostLogLine, StreamLogsResponse } from "@ferry/protocol";
import { parseVerb } from "../args.js";
import { VERBS } from "../spec/index.js";
import { toCliError, withConnection } from "../client.js";
import { parseCount } from "../units.js";

function humanLine(line: HostLogLine): string {
  const at = new Date(line.atMs).toISOString().slice(11, 23);
  const level = line.level === "" ? "" : ` ${line.level.toUpperCase()}`;
  const fields = line.fieldsJson === "" || line.fieldsJson === "{}" ? "" : ` ${line.fieldsJson}`;
  return `${at}${level} [${line.serial}] ${line.message}${fields}\n`;
}

/** `ferry logs HOST`: the agent's forwarded lines the controller holds, then new ones with --follow. */
export async function logsCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS.logs, args);
  const hostName = assertHostName(positionals[0] as string);
  const lines = parseCount(values.lines, "--lines");
  if (lines < 1 || lines > 100_000) throw new FerryError("E_BAD_ARGUMENT", "--lines must be between 1 and 100000");
  return withConnection(values, (connection) => {
    const stream = connection.client.streamLogs({ hostName, follow: values.follow, deploymentId: values.deployment ?? "", lines }, connection.metadata());
    const stop = (): void => stream.cancel();
    process.once("SIGINT", stop);
    // --json: one document of every line; followed, one document per line, as a stream has no end to close an array with.
    const collected: HostLogLine[] = [];
    const print = (line: HostLogLine): void => {
      if (!values.json) process.stdout.write(humanLine(line));
      else if (values.follow) process.stdout.write(`${JSON.stringify(line)}\n`);
      else collected.push(line);
    };
    return new Promise<number>((resolve, reject) => {
      stream.on("data", ({ line }: StreamLogsResponse) => {
        if (line) print(line);
      });
      stream.on("end", () => {
        if (values.json && !values.follow) process.stdout.write(`${JSON.stringify({ lines: collected }, null, 2)}\n`);
        resolve(0);
      });
      stream.on("error", (error: ServiceError) => {
        process.off("SIGINT", stop);
        if (error.code === status.CANCELLED) resolve(0);
        else reject(toCliError(error, connection.address));
      });
    }).finally(() => process.off("SIGINT", stop));
  });
}
