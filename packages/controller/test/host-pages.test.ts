// ferry status / host list against a controller holding thousands of hosts
// whose failure output alone is several times gRPC's 4 MiB message limit.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { HostPhase, HostStatus, type ListHostsRequest } from "@ferry/protocol";
import { MAX_PAGE_BYTES, loadPageOfHosts, pageOfHosts } from "../src/api/host-pages.js";
import { startTestController, type TestController } from "./controller-fixture.js";

const FERRY = fileURLToPath(new URL("../../cli/dist/main.js", import.meta.url));
const HOSTS = 2000;
const FAILED = 700;
const OUTPUT_BYTES = 16 * 1024;
const name = (i: number): string => `h-${String(i).padStart(5, "0")}`;

let t: TestController;
before(async () => {
  t = await startTestController();
  const store = t.controller.store;
  for (let i = 0; i < HOSTS; i++) await store.addHost(name(i), `hash-${i}`, i % 3 === 0 ? ["web"] : ["db"], 1);
  for (let i = 0; i < FAILED; i++) {
    await store.recordReport(name(i), {
      phase: HostPhase.HOST_PHASE_FAILED,
      lastErrorCode: "E_ACTIVATION_FAILED",
      lastErrorMessage: "switch-to-configuration failed",
      lastErrorOutput: `${i} `.padEnd(OUTPUT_BYTES, "x"),
    });
  }
});
after(async () => {
  await t.stop();
});

function ferry(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [FERRY, ...args, "--controller", `127.0.0.1:${t.controller.grpcPort}`, "--token-file", join(t.dataDir, "admin.token")],
      { maxBuffer: 256 * 1024 * 1024, timeout: 60_000 },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

type Listed = { hosts: Array<{ name: string; phase: string; tags: string[]; lastError: { output: string } | null }> };

describe("status and host list page through the controller's hosts", { timeout: 120_000 }, () => {
  test(`ferry status --json prints all ${HOSTS} hosts, ${FAILED} of them with ${OUTPUT_BYTES / 1024} KiB of failure output`, async () => {
    const result = await ferry(["status", "--json"]);
    assert.equal(result.code, 0, result.stderr);
    const { hosts } = JSON.parse(result.stdout) as Listed;
    assert.equal(hosts.length, HOSTS);
    assert.deepEqual(
      hosts.map((h) => h.name),
      Array.from({ length: HOSTS }, (_, i) => name(i)),
      "every host once, in name order",
    );
    // What made one unpaged answer exceed gRPC's limit (4 MiB) is really there.
    const outputBytes = hosts.reduce((sum, h) => sum + (h.lastError?.output.length ?? 0), 0);
    assert.ok(outputBytes >= FAILED * OUTPUT_BYTES && outputBytes > 2 * 4 * 1024 * 1024, String(outputBytes));
  });

  test("--phase failed and --tag filter on the controller; host list takes them too", async () => {
    const failed = JSON.parse((await ferry(["status", "--json", "--phase", "failed"])).stdout) as Listed;
    assert.equal(failed.hosts.length, FAILED);
    assert.ok(failed.hosts.every((h) => h.phase === "failed"));
    const failedWeb = JSON.parse((await ferry(["host", "list", "--json", "--phase", "failed", "--tag", "web"])).stdout) as Listed;
    assert.equal(failedWeb.hosts.length, Math.ceil(FAILED / 3));
    assert.ok(failedWeb.hosts.every((h) => h.tags.includes("web") && h.phase === "failed"));
  });

  test("an unknown phase is refused with the list of phases", async () => {
    const result = await ferry(["status", "--json", "--phase", "broken"]);
    assert.notEqual(result.code, 0);
    assert.match(result.stdout + result.stderr, /E_BAD_ARGUMENT.*not a phase: use one of idle, pending, .*failed/s);
  });
});

describe("pageOfHosts", () => {
  const host = (n: string, bytes = 10): HostStatus =>
    HostStatus.fromPartial({ name: n, tags: [], phase: HostPhase.HOST_PHASE_ACTIVE, lastErrorOutput: "y".repeat(bytes) });
  const request = (partial: Partial<ListHostsRequest>): ListHostsRequest => ({ names: [], pageSize: 0, pageToken: "", phases: [], tags: [], ...partial });

  test("a page stops at MAX_PAGE_BYTES even when page_size allows more, and the token resumes after its last host", () => {
    const all = Array.from({ length: 40 }, (_, i) => host(name(i), 256 * 1024));
    const first = pageOfHosts(all, request({ pageSize: 1000 }));
    assert.ok(first.hosts.length < 40 && first.hosts.length > 1, String(first.hosts.length));
    assert.ok(first.hosts.reduce((sum, h) => sum + HostStatus.encode(h).finish().length, 0) <= MAX_PAGE_BYTES);
    assert.equal(first.nextPageToken, first.hosts.at(-1)?.name);
    const second = pageOfHosts(all, request({ pageSize: 1000, pageToken: first.nextPageToken }));
    assert.equal(second.hosts[0]?.name, name(first.hosts.length));
  });

  test("without page_size or token every host comes at once, as before paging; the last page has no token", () => {
    const all = [host("b"), host("a"), host("c")];
    assert.deepEqual(
      pageOfHosts(all, request({})).hosts.map((h) => h.name),
      ["a", "b", "c"],
    );
    const last = pageOfHosts(all, request({ pageSize: 2, pageToken: "a" }));
    assert.deepEqual(
      last.hosts.map((h) => h.name),
      ["b", "c"],
    );
    assert.equal(last.nextPageToken, "");
    assert.throws(() => pageOfHosts(all, request({ pageToken: "../x" })), /host name|invalid/i);
  });

  test("pages read from the store a chunk at a time are the pages pageOfHosts cuts from the whole list, filters and all", async () => {
    const phases = [HostPhase.HOST_PHASE_ACTIVE, HostPhase.HOST_PHASE_FAILED, HostPhase.HOST_PHASE_FETCHING];
    const all = Array.from({ length: 2500 }, (_, i) =>
      HostStatus.fromPartial({
        name: name(i),
        tags: i % 4 === 0 ? ["web"] : ["db"],
        phase: phases[i % 3],
        lastErrorOutput: "z".repeat(i % 7 === 0 ? 20_000 : 10),
      }),
    );
    let reads = 0;
    const after = async (cursor: string, limit: number): Promise<HostStatus[]> => {
      reads += 1;
      return all.filter((h) => h.name > cursor).slice(0, limit);
    };
    for (const shape of [
      { pageSize: 300 },
      { pageSize: 1000, tags: ["web"] },
      { pageSize: 7, phases: [HostPhase.HOST_PHASE_FAILED], tags: ["db"] },
      { pageSize: 10_000 },
    ]) {
      let expectedToken = "";
      let loadedToken = "";
      let pages = 0;
      do {
        const expected = pageOfHosts(all, request({ ...shape, pageToken: expectedToken }));
        const loaded = await loadPageOfHosts(after, request({ ...shape, pageToken: loadedToken }));
        assert.deepEqual(
          loaded.hosts.map((h) => h.name),
          expected.hosts.map((h) => h.name),
        );
        assert.equal(loaded.nextPageToken, expected.nextPageToken);
        expectedToken = expected.nextPageToken;
        loadedToken = loaded.nextPageToken;
        pages += 1;
      } while (expectedToken !== "" && pages < 1000);
    }
    assert.ok(reads > 0);
  });
});
