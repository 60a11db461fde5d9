import { FerryError, assertHostName, formatMode } from "@ferry/core";
import type { HistoryEntry } from "@ferry/protocol";
import { parseVerb } from "../args.js";
import { VERBS } from "../spec/index.js";
import { withConnection } from "../client.js";
import { createOutput, shortPath, table, terminalWidth } from "../output.js";
import { parseCount } from "../units.js";

function when(ms: number): string {
  return ms === 0 ? "" : new Date(ms).toISOString().slice(0, 19).replace("T", " ");
}

function historyJson(entry: HistoryEntry): Record<string, unknown> {
  return {
    ...entry,
    at: when(entry.atMs),
    finishedAt: entry.finishedAtMs === 0 ? null : when(entry.finishedAtMs),
    mode: formatMode(entry.mode),
  };
}

/** `ferry history [HOST]`: deployments and their outcomes, newest first. */
export async function historyCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS.history, args);
  const limit = parseCount(values.limit, "--limit");
  if (limit < 1 || limit > 1000) throw new FerryError("E_BAD_ARGUMENT", "--limit must be between 1 and 1000");
  const hostName = positionals[0] === undefined ? "" : assertHostName(positionals[0]);
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    const { entries } = await connection.call(connection.client.listHistory, { hostName, limit });
    out.result({ entries: entries.map(historyJson) }, () => {
      if (entries.length === 0) return hostName === "" ? "no deployments recorded\n" : `no deployments of ${hostName} recorded\n`;
      const rows = entries.map((entry) => [
        when(entry.atMs).slice(5, 16),
        entry.hostName,
        entry.outcome,
        entry.rolloutId || entry.deploymentId,
        shortPath(entry.storePath),
        entry.requestedBy || "-",
        entry.errorCode === "" ? "-" : `${entry.errorCode}: ${entry.errorMessage}`,
      ]);
      // At 80 columns: the error goes first, then the system, then who asked; when, host, outcome and id stay.
      return table(["WHEN", "HOST", "OUTCOME", "DEPLOYMENT", "SYSTEM", "BY", "ERROR"], rows, terminalWidth(), {
        elastic: [6, 4, 1, 5],
        optional: [6, 4, 5],
      });
    });
    return 0;
  });
}
