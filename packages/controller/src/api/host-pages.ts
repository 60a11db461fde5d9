import { FerryError, assertHostName, assertTag } from "@ferry/core";
import { HostStatus, type ListHostsRequest, type ListHostsResponse } from "@ferry/protocol";

/**
 * Bytes of host statuses per page at most, whatever page_size asks: gRPC
 * refuses messages over 4 MiB, and a host's status carries up to 16 KiB of
 * failure output, so a count alone cannot keep a page under the limit.
 */
export const MAX_PAGE_BYTES = 3 * 1024 * 1024;
export const MAX_PAGE_SIZE = 10_000;

/** What a ListHosts request asks of a page, checked once. */
function pageRules(request: ListHostsRequest): { matches: (host: HostStatus) => boolean; limit: number; paged: boolean } {
  const tags = request.tags.map(assertTag);
  if (request.pageToken !== "") assertHostName(request.pageToken);
  if (request.pageSize > MAX_PAGE_SIZE) throw new FerryError("E_BAD_ARGUMENT", `page_size is at most ${MAX_PAGE_SIZE}, got ${request.pageSize}`);
  const phases = new Set(request.phases);
  return {
    matches: (host) => (phases.size === 0 || phases.has(host.phase)) && tags.every((tag) => host.tags.includes(tag)),
    limit: request.pageSize > 0 ? request.pageSize : MAX_PAGE_SIZE,
    paged: request.pageSize > 0 || request.pageToken !== "",
  };
}

/** One page filled in name order, up to its host count and MAX_PAGE_BYTES. */
class Page {
  private readonly hosts: HostStatus[] = [];
  private bytes = 0;

  constructor(private readonly limit: number) {}

  /** False when the host does not fit: the page ends there, and there is more. */
  take(host: HostStatus): boolean {
    if (this.hosts.length >= this.limit) return false;
    const size = HostStatus.encode(host).finish().length + 8;
    // One host alone always fits: a status is bounded far below the limit.
    if (this.hosts.length > 0 && this.bytes + size > MAX_PAGE_BYTES) return false;
    this.hosts.push(host);
    this.bytes += size;
    return true;
  }

  response(more: boolean): ListHostsResponse {
    const last = this.hosts.at(-1);
    return { hosts: this.hosts, nextPageToken: more && last !== undefined ? last.name : "" };
  }
}

/**
 * One page of `all` (every host the name list selects) as ListHosts answers:
 * filtered by phase and tags, in name order, after the page token (the last
 * name of the previous page, so hosts added or removed between pages shift
 * nothing already seen), at most page_size hosts and MAX_PAGE_BYTES.
 * Without page_size and page_token everything matching is returned, as before paging.
 */
export function pageOfHosts(all: readonly HostStatus[], request: ListHostsRequest): ListHostsResponse {
  const { matches, limit, paged } = pageRules(request);
  const matching = all.filter(matches).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (!paged) return { hosts: matching, nextPageToken: "" };
  const start = request.pageToken === "" ? 0 : matching.findIndex((host) => host.name > request.pageToken);
  const page = new Page(limit);
  if (start < 0) return page.response(false);
  for (const host of matching.slice(start)) if (!page.take(host)) return page.response(true);
  return page.response(false);
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
  const { matches, limit } = pageRules(request);
  const page = new Page(limit);
  let cursor = request.pageToken;
  for (;;) {
    const chunk = await after(cursor, CHUNK);
    for (const host of chunk) {
      cursor = host.name;
      if (matches(host) && !page.take(host)) return page.response(true);
    }
    if (chunk.length < CHUNK) return page.response(false);
  }
}
