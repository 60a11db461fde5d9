import { FerryError, assertHostName, assertTag } from "@ferry/core";
import { HostStatus, type ListHostsRequest, type ListHostsResponse } from "@ferry/protocol";

/**
 * Bytes of host statuses per page at most, whatever page_size asks: gRPC
 * refuses messages over 4 MiB, and a host's status carries up to 16 KiB of
 * failure output, so a count alone cannot keep a page under the limit.
 */
export const MAX_PAGE_BYTES = 3 * 1024 * 1024;
export const MAX_PAGE_SIZE = 10_000;

/**
 * One page of `all` (every host the name list selects) as ListHosts answers:
 * filtered by phase and tags, in name order, after the page token (the last
 * name of the previous page, so hosts added or removed between pages shift
 * nothing already seen), at most page_size hosts and MAX_PAGE_BYTES.
 * Without page_size and page_token everything matching is returned, as before paging.
 */
export function pageOfHosts(all: readonly HostStatus[], request: ListHostsRequest): ListHostsResponse {
  const tags = request.tags.map(assertTag);
  if (request.pageToken !== "") assertHostName(request.pageToken);
  if (request.pageSize > MAX_PAGE_SIZE) throw new FerryError("E_BAD_ARGUMENT", `page_size is at most ${MAX_PAGE_SIZE}, got ${request.pageSize}`);
  const phases = new Set(request.phases);
  const matching = all
    .filter((host) => (phases.size === 0 || phases.has(host.phase)) && tags.every((tag) => host.tags.includes(tag)))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const paged = request.pageSize > 0 || request.pageToken !== "";
  if (!paged) return { hosts: matching, nextPageToken: "" };
  const start = request.pageToken === "" ? 0 : matching.findIndex((host) => host.name > request.pageToken);
  if (start < 0) return { hosts: [], nextPageToken: "" };
  const limit = request.pageSize > 0 ? request.pageSize : MAX_PAGE_SIZE;
  const hosts: HostStatus[] = [];
  let bytes = 0;
  for (const host of matching.slice(start)) {
    if (hosts.length >= limit) break;
    const size = HostStatus.encode(host).finish().length + 8;
    // One host alone always fits: a status is bounded far below the limit.
    if (hosts.length > 0 && bytes + size > MAX_PAGE_BYTES) break;
    hosts.push(host);
    bytes += size;
  }
  const last = hosts.at(-1);
  const more = last !== undefined && start + hosts.length < matching.length;
  return { hosts, nextPageToken: more ? last.name : "" };
}

/** Hosts read from the store at a time while filling a page. */
const CHUNK = 1000;

/**
 * The same page as pageOfHosts, read from the store a chunk at a time after
 * the page token instead of converting every host for every page: paging
 * through 50,000 hosts reads each once. `after(name, limit)` returns hosts
 * in name order after `name`.
 */
export async function loadPageOfHosts(after: (name: string, limit: number) => Promise<HostStatus[]>, request: ListHostsRequest): Promise<ListHostsResponse> {
  const tags = request.tags.map(assertTag);
  if (request.pageToken !== "") assertHostName(request.pageToken);
  if (request.pageSize > MAX_PAGE_SIZE) throw new FerryError("E_BAD_ARGUMENT", `page_size is at most ${MAX_PAGE_SIZE}, got ${request.pageSize}`);
  const phases = new Set(request.phases);
  const limit = request.pageSize > 0 ? request.pageSize : MAX_PAGE_SIZE;
  const hosts: HostStatus[] = [];
  let bytes = 0;
  let cursor = request.pageToken;
  for (;;) {
    const chunk = await after(cursor, CHUNK);
    for (const host of chunk) {
      cursor = host.name;
      if ((phases.size > 0 && !phases.has(host.phase)) || !tags.every((tag) => host.tags.includes(tag))) continue;
      const size = HostStatus.encode(host).finish().length + 8;
      // Another matching host that does not fit: the page ends, and says there is more.
      if (hosts.length >= limit || (hosts.length > 0 && bytes + size > MAX_PAGE_BYTES)) return { hosts, nextPageToken: (hosts.at(-1) as HostStatus).name };
      hosts.push(host);
      bytes += size;
    }
    if (chunk.length < CHUNK) return { hosts, nextPageToken: "" };
  }
}
