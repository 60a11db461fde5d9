import { assertHostName, formatPhase } from "@ferry/core";
import { parseVerb } from "../args.js";
import { VERBS } from "../spec/index.js";
import { withConnection } from "../client.js";
import { hostFilter, listAllHosts } from "../host-pages.js";
import { ago, checksCell, createOutput, failingChecksNotes, hostStatusJson, shortPath, table, terminalWidth } from "../output.js";

export async function statusCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS.status, args);
  const filter = hostFilter(positionals.map(assertHostName), values.phase, values.tag);
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    const hosts = await listAllHosts(connection, filter);
    out.result({ hosts: hosts.map(hostStatusJson) }, () => {
      const rows = hosts.map((h) => [
        h.name,
        h.online ? "online" : "offline",
        `${formatPhase(h.phase)}${h.heldForWindow ? " (waits for its window)" : ""}`,
        shortPath(h.currentSystem),
        shortPath(h.desiredSystem),
        ago(h.lastSeenMs),
        checksCell(h),
        h.agentVersion || "-",
        h.lastErrorCode ? `${h.lastErrorCode}: ${h.lastErrorMessage.slice(0, 80)}` : "-",
      ]);
      const notes = failingChecksNotes(hosts);
      return (
        // At a narrow terminal: the error and phase are cut first, then agent, checks and paths make way.
        table(["HOST", "LINK", "PHASE", "CURRENT", "DESIRED", "LAST SEEN", "CHECKS", "AGENT", "LAST ERROR"], rows, terminalWidth(), {
          elastic: [8, 4, 3, 2, 0],
          optional: [7, 6, 3, 5, 4],
          least: { 0: 24 },
        }) + (notes.length > 0 ? `\n${notes.join("\n")}\n` : "")
      );
    });
    return 0;
  });
}
