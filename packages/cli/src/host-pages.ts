import { FerryError, assertTag } from "@ferry/core";
import { HostPhase, type HostStatus } from "@ferry/protocol";
import type { OperatorConnection } from "./client.js";

/** Hosts asked for per ListHosts call; the controller also stops a page at 3 MiB. */
const PAGE_SIZE = 1000;

export interface HostFilter {
  names: string[];
  phases: HostPhase[];
  tags: string[];
}

/** "failed", "rolled-back", "boot-pending" (as `ferry status` prints them) → the wire phase. */
export function parsePhaseFlag(value: string): HostPhase {
  const key = `HOST_PHASE_${value.trim().toUpperCase().replaceAll("-", "_")}`;
  const phase = (HostPhase as unknown as Record<string, number | undefined>)[key];
  if (phase === undefined || phase === HostPhase.HOST_PHASE_UNSPECIFIED || phase === HostPhase.UNRECOGNIZED) {
    const known = Object.keys(HostPhase)
      .filter((k) => k.startsWith("HOST_PHASE_") && k !== "HOST_PHASE_UNSPECIFIED")
      .map((k) => k.slice("HOST_PHASE_".length).toLowerCase().replaceAll("_", "-"));
    throw new FerryError("E_BAD_ARGUMENT", `--phase ${JSON.stringify(value)} is not a phase: use one of ${known.join(", ")}`);
  }
  return phase as HostPhase;
}

export function hostFilter(names: string[], phases: readonly string[] | undefined, tags: readonly string[] | undefined): HostFilter {
  return { names, phases: (phases ?? []).map(parsePhaseFlag), tags: (tags ?? []).map(assertTag) };
}

/**
 * Every host the filter selects, page by page: one answer for 50,000 hosts
 * with failure output would be far over gRPC's 4 MiB message limit.
 */
export async function listAllHosts(connection: OperatorConnection, filter: HostFilter): Promise<HostStatus[]> {
  const hosts: HostStatus[] = [];
  let pageToken = "";
  for (;;) {
    const page = await connection.call(connection.client.listHosts, { ...filter, pageSize: PAGE_SIZE, pageToken });
    hosts.push(...page.hosts);
    if (page.nextPageToken === "" || page.hosts.length === 0) return hosts;
    pageToken = page.nextPageToken;
  }
}
