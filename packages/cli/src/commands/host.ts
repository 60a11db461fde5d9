import { FerryError, assertHostName, formatPhase, writeFileAtomic } from "@ferry/core";
import { CONNECTION_OPTIONS, parse } from "../args.js";
import { hostFilter, listAllHosts } from "../host-pages.js";
import { withConnection } from "../client.js";
import { ago, createOutput, hostStatusJson, shortPath, table } from "../output.js";

export async function hostCommand(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  switch (verb) {
    case "add":
      return hostAdd(rest);
    case "list":
      return hostList(rest);
    case "remove":
      return hostRemove(rest);
    default:
      throw new FerryError("E_BAD_ARGUMENT", `unknown verb 'host ${verb ?? ""}': use add, list or remove`);
  }
}

async function hostAdd(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...CONNECTION_OPTIONS, tag: { type: "string", multiple: true, default: [] }, "token-out": { type: "string" } });
  if (positionals.length !== 1) throw new FerryError("E_BAD_ARGUMENT", "usage: ferry host add NAME [--tag TAG]... [--token-out FILE]");
  const name = assertHostName(positionals[0]);
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    const response = await connection.call(connection.client.addHost, { name, tags: values.tag });
    const tokenOut = values["token-out"];
    if (tokenOut) writeFileAtomic(tokenOut, `${response.agentToken}\n`, 0o600);
    out.result({ host: response.host && hostStatusJson(response.host), ...(tokenOut ? { tokenFile: tokenOut } : { agentToken: response.agentToken }) }, () =>
      tokenOut
        ? `added host ${name}; its agent token is in ${tokenOut}\n`
        : `added host ${name}\nagent token (shown once; put it in the agent's tokenFile):\n${response.agentToken}\n`,
    );
    return 0;
  });
}

async function hostList(args: string[]): Promise<number> {
  const { values } = parse(args, { ...CONNECTION_OPTIONS, phase: { type: "string", multiple: true }, tag: { type: "string", multiple: true } }, false);
  const filter = hostFilter([], values.phase, values.tag);
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    const hosts = await listAllHosts(connection, filter);
    out.result({ hosts: hosts.map(hostStatusJson) }, () =>
      table(
        ["HOST", "TAGS", "ONLINE", "PHASE", "CURRENT", "LAST SEEN"],
        hosts.map((h) => [h.name, h.tags.join(",") || "-", h.online ? "yes" : "no", formatPhase(h.phase), shortPath(h.currentSystem), ago(h.lastSeenMs)]),
      ),
    );
    return 0;
  });
}

async function hostRemove(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, CONNECTION_OPTIONS);
  if (positionals.length !== 1) throw new FerryError("E_BAD_ARGUMENT", "usage: ferry host remove NAME");
  const name = assertHostName(positionals[0]);
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    await connection.call(connection.client.removeHost, { name });
    out.result({ removed: name }, () => `removed host ${name}\n`);
    return 0;
  });
}
