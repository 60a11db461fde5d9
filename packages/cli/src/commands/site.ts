import { resolve } from "node:path";
import { FerryError, serializeInventory, writeFileAtomic } from "@ferry/core";
import { CONNECTION_OPTIONS, parse, requireString } from "../args.js";
import { connectionFlags, connect } from "../client.js";
import { createOutput } from "../output.js";
import { readInventory, siteClient } from "./site-client.js";

export async function siteCommand(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  if (verb !== "inventory") throw new FerryError("E_BAD_ARGUMENT", `unknown verb 'site ${verb ?? ""}': use inventory`);
  const { values } = parse(rest, { ...CONNECTION_OPTIONS, output: { type: "string", short: "o" } }, false);
  const output = resolve(requireString(values.output, "-o/--output"));
  const connection = connect(connectionFlags(values));
  const client = siteClient(connection);
  try {
    const { storePaths, lastSequence } = await readInventory(connection, client);
    writeFileAtomic(output, serializeInventory({ createdAt: new Date().toISOString(), lastSequence, storePaths }), 0o644);
    createOutput(values.json).result(
      { file: output, paths: storePaths.length, lastSequence },
      () => `wrote ${output}: ${storePaths.length} paths, last bundle ${lastSequence || "none"}\n`,
    );
    return 0;
  } finally {
    client.close();
    connection.close();
  }
}
