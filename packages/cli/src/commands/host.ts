import { FerryError, assertHostName, formatPhase } from "@ferry/core";
import { parseVerb } from "../args.js";
import { VERBS } from "../spec/index.js";
import { hostFilter, listAllHosts } from "../host-pages.js";
import { withConnection } from "../client.js";
import { ago, createOutput, hostStatusJson, shortPath, table, terminalWidth } from "../output.js";
import { accessCall, accessClient } from "./access-client.js";
import { deliverSecret, requireTokenOut } from "./token-out.js";

export async function hostCommand(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  switch (verb) {
    case "add":
      return hostAdd(rest);
    case "list":
      return hostList(rest);
    case "remove":
      return hostRemove(rest);
    case "rotate-token":
      return hostRotateToken(rest);
    default:
      throw new FerryError("E_BAD_ARGUMENT", `unknown verb 'host ${verb ?? ""}': use add, list, remove or rotate-token`);
  }
}

const HOST_ADD_USAGE = "ferry host add NAME [--tag TAG]... --token-out FILE|-";

async function hostAdd(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS["host add"], args);
  const name = assertHostName(positionals[0]);
  // Checked before the host is added: a refused command changes nothing.
  const tokenOut = requireTokenOut(values["token-out"], HOST_ADD_USAGE);
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    const response = await connection.call(connection.client.addHost, { name, tags: values.tag });
    deliverSecret(out, tokenOut, response.agentToken, "agentToken", { host: response.host && hostStatusJson(response.host) }, `added host ${name}`);
    return 0;
  });
}

const ROTATE_USAGE = "ferry host rotate-token HOST --token-out FILE|-";

/**
 * A new agent token for a host that stays registered. The connected agent
 * keeps its link; it reads its tokenFile again at every reconnect, so the new
 * token must reach that file before the link next drops (the old one is
 * refused from now on).
 */
async function hostRotateToken(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS["host rotate-token"], args);
  const name = assertHostName(positionals[0]);
  const tokenOut = requireTokenOut(values["token-out"], ROTATE_USAGE);
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    const client = accessClient(connection);
    const response = await accessCall(connection, client, client.rotateHostToken, { hostName: name });
    deliverSecret(
      out,
      tokenOut,
      response.agentToken,
      "agentToken",
      { host: name, online: response.online },
      `new agent token for ${name} (${response.online ? "its agent stays connected; put the token in its tokenFile before the link next drops" : "its agent is offline; put the token in its tokenFile"})`,
    );
    return 0;
  });
}

async function hostList(args: string[]): Promise<number> {
  const { values } = parseVerb(VERBS["host list"], args);
  const filter = hostFilter([], values.phase, values.tag);
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    const hosts = await listAllHosts(connection, filter);
    out.result({ hosts: hosts.map(hostStatusJson) }, () =>
      table(
        ["HOST", "TAGS", "ONLINE", "PHASE", "CURRENT", "LAST SEEN"],
        hosts.map((h) => [h.name, h.tags.join(",") || "-", h.online ? "yes" : "no", formatPhase(h.phase), shortPath(h.currentSystem), ago(h.lastSeenMs)]),
        terminalWidth(),
        { elastic: [1, 3, 0], optional: [5, 4], least: { 0: 24 } },
      ),
    );
    return 0;
  });
}

async function hostRemove(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS["host remove"], args);
  const name = assertHostName(positionals[0]);
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    await connection.call(connection.client.removeHost, { name });
    out.result({ removed: name }, () => `removed host ${name}\n`);
    return 0;
  });
}
