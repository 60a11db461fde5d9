import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { FerryError, hashToken, type ErrorCode } from "@ferry/core";
import type { HostRecord } from "@ferry/controller";
import { ActivationMode, HostPhase } from "@ferry/protocol";
import type { StateStore } from "../src/store/state-store.js";
import { recordDeployment } from "./record-deployment.js";

/** A backend under the contract: `open()` makes an empty database, `open(file)` opens the one it named again. */
export interface ContractBackend {
  name: string;
  open(file?: string): Promise<{ store: StateStore; file: string }>;
}

export const SYS_A = "/nix/store/pz5wv3mkbf4bwihvsz8yqydfwb9bfhy5-nixos-system-a";
export const SYS_B = "/nix/store/1zy01hjzwvvia6h9dq5xar88v77fgh9x-nixos-system-b";

export async function rejectsCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof FerryError, `expected FerryError ${code}, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return true;
  });
}

/**
 * What every StateStore backend must do, run against SQLite and PostgreSQL
 * alike (sqlite-store.test.ts, postgres-store.test.ts).
 */
export function storeContract(backend: ContractBackend): void {
  const stores: StateStore[] = [];
  after(async () => {
    for (const store of stores) await store.close().catch(() => undefined);
  });
  const open = async (file?: string): Promise<{ store: StateStore; file: string }> => {
    const opened = await backend.open(file);
    stores.push(opened.store);
    return opened;
  };

  describe(`${backend.name}: hosts`, () => {
    test("addHost returns a fresh record with defaults, tags sorted and deduplicated", async () => {
      const { store } = await open();
      const host = await store.addHost("web1", hashToken("t1"), ["prod", "eu", "prod"], 1000);
      assert.deepEqual(host, {
        name: "web1",
        tokenHash: hashToken("t1"),
        tags: ["eu", "prod"],
        createdAtMs: 1000,
        desiredSystem: "",
        desiredSerial: 0,
        deploymentId: "",
        activationMode: ActivationMode.ACTIVATION_MODE_UNSPECIFIED,
        currentSystem: "",
        previousSystem: "",
        phase: HostPhase.HOST_PHASE_IDLE,
        appliedSerial: 0,
        lastSeenMs: 0,
        lastErrorCode: "",
        lastErrorMessage: "",
        lastErrorOutput: "",
        agentVersion: "",
        desiredActivate: true,
        rolloutId: "",
        heldForWindow: false,
        checksFailingBeforeAndAfter: [],
        checksRun: 0,
        desiredIntent: undefined,
      } satisfies HostRecord);
      assert.deepEqual(await store.getHost("web1"), host);
      assert.equal(await store.getHost("web2"), undefined);
    });

    test("a duplicate name → E_HOST_EXISTS and the first token stays", async () => {
      const { store } = await open();
      await store.addHost("web1", hashToken("first"), [], 1);
      await rejectsCode(store.addHost("web1", hashToken("second"), ["x"], 2), "E_HOST_EXISTS");
      const host = await store.getHost("web1");
      assert.equal(host?.tokenHash, hashToken("first"));
      assert.deepEqual(host?.tags, []);
    });

    test("bad host names are refused by every entry point", async () => {
      const { store } = await open();
      for (const name of ["", "a/b", "..", "a b", "-x", "x".repeat(64)]) {
        await rejectsCode(store.addHost(name, hashToken("t"), [], 1), "E_BAD_HOST_NAME");
        await rejectsCode(store.getHost(name), "E_BAD_HOST_NAME");
        await rejectsCode(store.removeHost(name), "E_BAD_HOST_NAME");
        await rejectsCode(store.recordReport(name, { lastSeenMs: 1 }), "E_BAD_HOST_NAME");
      }
      assert.deepEqual(await store.listHosts(), []);
    });

    test("removeHost removes; an unknown host → E_UNKNOWN_HOST", async () => {
      const { store } = await open();
      await store.addHost("web1", hashToken("t"), [], 1);
      await store.addHost("web2", hashToken("t"), [], 1);
      await store.removeHost("web1");
      assert.equal(await store.getHost("web1"), undefined);
      await rejectsCode(store.removeHost("web1"), "E_UNKNOWN_HOST");
      await rejectsCode(store.removeHost("nope"), "E_UNKNOWN_HOST");
      assert.deepEqual(
        (await store.listHosts()).map((h) => h.name),
        ["web2"],
      );
    });

    test("listHosts: all sorted by name, or exactly the named ones, E_UNKNOWN_HOST for a missing one", async () => {
      const { store } = await open();
      for (const name of ["c", "a", "b"]) await store.addHost(name, hashToken(name), [], 1);
      assert.deepEqual(
        (await store.listHosts()).map((h) => h.name),
        ["a", "b", "c"],
      );
      assert.deepEqual(
        (await store.listHosts(["c", "a"])).map((h) => h.name),
        ["c", "a"],
      );
      await rejectsCode(store.listHosts(["a", "zz"]), "E_UNKNOWN_HOST");
    });

    test("listHostPhases: every host's name and last reported phase, as listHosts has them", async () => {
      const { store } = await open();
      for (const name of ["c", "a", "b"]) await store.addHost(name, hashToken(name), [], 1);
      await store.recordReport("b", { phase: HostPhase.HOST_PHASE_FAILED, lastSeenMs: 2 });
      const byName = (hosts: { name: string; phase: HostPhase }[]) => [...hosts].sort((x, y) => x.name.localeCompare(y.name)).map((h) => [h.name, h.phase]);
      assert.deepEqual(byName(await store.listHostPhases()), byName(await store.listHosts()));
      const fresh = (await store.getHost("a"))?.phase;
      assert.deepEqual(byName(await store.listHostPhases()), [
        ["a", fresh],
        ["b", HostPhase.HOST_PHASE_FAILED],
        ["c", fresh],
      ]);
    });
  });

  describe(`${backend.name}: deployments and reports`, () => {
    test("recordDeployment sets the desired system and increments desiredSerial per host", async () => {
      const { store } = await open();
      await store.addHost("a", hashToken("a"), [], 1);
      await store.addHost("b", hashToken("b"), [], 1);
      await store.recordReport("a", {
        lastErrorCode: "E_FETCH_FAILED",
        lastErrorMessage: "old",
        lastErrorOutput: "old out",
        phase: HostPhase.HOST_PHASE_FAILED,
      });
      const first = await recordDeployment(store, "d1", [{ hostName: "a", storePath: SYS_A }], ActivationMode.ACTIVATION_MODE_SWITCH, 10);
      assert.equal(first.length, 1);
      assert.equal(first[0]?.desiredSerial, 1);
      assert.equal(first[0]?.phase, HostPhase.HOST_PHASE_PENDING);
      assert.equal(first[0]?.lastErrorCode, "", "a new deployment clears the previous error");
      assert.equal(first[0]?.lastErrorOutput, "");
      const second = await recordDeployment(
        store,
        "d2",
        [
          { hostName: "a", storePath: SYS_B },
          { hostName: "b", storePath: SYS_A },
        ],
        ActivationMode.ACTIVATION_MODE_BOOT,
        20,
      );
      assert.deepEqual(
        second.map((h) => [h.name, h.desiredSystem, h.desiredSerial, h.deploymentId, h.activationMode]),
        [
          ["a", SYS_B, 2, "d2", ActivationMode.ACTIVATION_MODE_BOOT],
          ["b", SYS_A, 1, "d2", ActivationMode.ACTIVATION_MODE_BOOT],
        ],
      );
    });

    test("concurrent deployments never hand out the same serial", async () => {
      const { store } = await open();
      await store.addHost("a", hashToken("a"), [], 1);
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => recordDeployment(store, `d${i}`, [{ hostName: "a", storePath: SYS_A }], ActivationMode.ACTIVATION_MODE_SWITCH, i)),
      );
      const serials = results.map((r) => r[0]?.desiredSerial).sort((x, y) => (x as number) - (y as number));
      assert.deepEqual(
        serials,
        Array.from({ length: 20 }, (_, i) => i + 1),
      );
      assert.equal((await store.getHost("a"))?.desiredSerial, 20);
    });

    test("an unknown host in the batch changes nothing for the others (one transaction)", async () => {
      const { store } = await open();
      await store.addHost("a", hashToken("a"), [], 1);
      await store.addHost("b", hashToken("b"), [], 1);
      await recordDeployment(store, "d1", [{ hostName: "a", storePath: SYS_A }], ActivationMode.ACTIVATION_MODE_SWITCH, 1);
      const before = await store.listHosts();
      await rejectsCode(
        recordDeployment(
          store,
          "d2",
          [
            { hostName: "a", storePath: SYS_B },
            { hostName: "b", storePath: SYS_B },
            { hostName: "ghost", storePath: SYS_B },
          ],
          ActivationMode.ACTIVATION_MODE_SWITCH,
          2,
        ),
        "E_UNKNOWN_HOST",
      );
      assert.deepEqual(await store.listHosts(), before);
      // The failed deployment id was not recorded either: it can be used again.
      const again = await recordDeployment(store, "d2", [{ hostName: "b", storePath: SYS_B }], ActivationMode.ACTIVATION_MODE_SWITCH, 3);
      assert.equal(again[0]?.desiredSerial, 1);
    });

    test("bad targets are refused before anything is written", async () => {
      const { store } = await open();
      await store.addHost("a", hashToken("a"), [], 1);
      await rejectsCode(
        recordDeployment(store, "d", [{ hostName: "a", storePath: "/tmp/evil" }], ActivationMode.ACTIVATION_MODE_SWITCH, 1),
        "E_BAD_STORE_PATH",
      );
      await rejectsCode(recordDeployment(store, "d", [{ hostName: "a/..", storePath: SYS_A }], ActivationMode.ACTIVATION_MODE_SWITCH, 1), "E_BAD_HOST_NAME");
      assert.equal((await store.getHost("a"))?.desiredSerial, 0);
    });

    test("recordReport changes only the given fields; unknown host → E_UNKNOWN_HOST", async () => {
      const { store } = await open();
      await store.addHost("a", hashToken("a"), ["t"], 5);
      await recordDeployment(store, "d1", [{ hostName: "a", storePath: SYS_A }], ActivationMode.ACTIVATION_MODE_SWITCH, 1);
      const before = await store.getHost("a");
      const after1 = await store.recordReport("a", {
        currentSystem: SYS_A,
        phase: HostPhase.HOST_PHASE_ACTIVE,
        appliedSerial: 1,
        lastSeenMs: 77,
        agentVersion: "0.1.0",
        lastErrorCode: undefined,
      });
      assert.deepEqual(after1, {
        ...before,
        currentSystem: SYS_A,
        phase: HostPhase.HOST_PHASE_ACTIVE,
        appliedSerial: 1,
        lastSeenMs: 77,
        agentVersion: "0.1.0",
      });
      assert.deepEqual(await store.recordReport("a", {}), after1);
      await rejectsCode(store.recordReport("ghost", { lastSeenMs: 1 }), "E_UNKNOWN_HOST");
      await rejectsCode(store.recordReport("ghost", {}), "E_UNKNOWN_HOST");
    });

    test("a new currentSystem moves the one it replaces to previousSystem; the same one or a report without it does not", async () => {
      const { store } = await open();
      await store.addHost("a", hashToken("a"), [], 5);
      await store.recordReport("a", { currentSystem: SYS_A });
      assert.equal((await store.getHost("a"))?.previousSystem, "");
      await store.recordReport("a", { currentSystem: SYS_B });
      assert.deepEqual([(await store.getHost("a"))?.currentSystem, (await store.getHost("a"))?.previousSystem], [SYS_B, SYS_A]);
      await store.recordReport("a", { currentSystem: SYS_B, lastSeenMs: 9 });
      await store.recordReport("a", { lastSeenMs: 10 });
      assert.equal((await store.getHost("a"))?.previousSystem, SYS_A);
      await store.recordReport("a", { currentSystem: SYS_A });
      assert.equal((await store.getHost("a"))?.previousSystem, SYS_B);
    });

    test("a host's checks failing before and after the switch are stored with the result, and survive a reopen", async () => {
      const { store, file } = await open();
      await store.addHost("a", hashToken("a"), [], 5);
      const reported = await store.recordReport("a", {
        phase: HostPhase.HOST_PHASE_ACTIVE,
        checksFailingBeforeAndAfter: ["systemd:nginx.service", "http:http://x/"],
        checksRun: 3,
      });
      assert.deepEqual([reported.checksFailingBeforeAndAfter, reported.checksRun], [["systemd:nginx.service", "http:http://x/"], 3]);
      await store.close();
      stores.splice(stores.indexOf(store), 1);
      const { store: reopened } = await open(file);
      assert.deepEqual((await reopened.getHost("a"))?.checksFailingBeforeAndAfter, ["systemd:nginx.service", "http:http://x/"]);
      const cleared = await reopened.recordReport("a", { checksFailingBeforeAndAfter: [], checksRun: 0 });
      assert.deepEqual([cleared.checksFailingBeforeAndAfter, cleared.checksRun], [[], 0]);
    });

    test("events are listed per host, oldest first, the newest `limit` of them", async () => {
      const { store } = await open();
      for (const name of ["a", "b"]) await store.addHost(name, hashToken(name), [], 0);
      for (let i = 1; i <= 5; i++) await store.recordReports([{ name: "a", report: {}, event: { atMs: i, kind: `k${i}`, data: { i, nested: { ok: true } } } }]);
      await store.recordReports([{ name: "b", report: {}, event: { atMs: 9, kind: "other", data: {} } }]);
      const events = await store.listEvents("a", 3);
      assert.deepEqual(
        events.map((e) => [e.atMs, e.kind, e.data["i"]]),
        [
          [3, "k3", 3],
          [4, "k4", 4],
          [5, "k5", 5],
        ],
      );
      assert.deepEqual(events[0]?.data, { i: 3, nested: { ok: true } });
      assert.deepEqual(await store.listEvents("nobody", 10), []);
    });
  });

  describe(`${backend.name}: deployments held for a maintenance window`, () => {
    test("a held host is asked to fetch only; releasing it asks it to activate under a new serial of the same deployment", async () => {
      const { store } = await open();
      await store.addHost("a", hashToken("a"), [], 1);
      await store.addHost("b", hashToken("b"), [], 1);
      const [a, b] = await recordDeployment(
        store,
        "d1",
        [
          { hostName: "a", storePath: SYS_A, heldForWindow: true },
          { hostName: "b", storePath: SYS_A },
        ],
        ActivationMode.ACTIVATION_MODE_UNSPECIFIED,
        2,
      );
      assert.deepEqual([a?.heldForWindow, a?.desiredActivate, a?.desiredSerial], [true, false, 1]);
      assert.deepEqual([b?.heldForWindow, b?.desiredActivate], [false, true]);
      assert.deepEqual(
        (await store.listHeld()).map((host) => host.name),
        ["a"],
      );
      assert.equal(await store.releaseHeld("a", "another-deployment"), undefined, "only the deployment that was held is released");
      const released = await store.releaseHeld("a", "d1");
      assert.deepEqual([released?.heldForWindow, released?.desiredActivate, released?.desiredSerial, released?.deploymentId], [false, true, 2, "d1"]);
      assert.equal(await store.releaseHeld("a", "d1"), undefined, "released once");
      assert.deepEqual(await store.listHeld(), []);
    });

    test("a newer deployment that is not held clears the hold", async () => {
      const { store } = await open();
      await store.addHost("a", hashToken("a"), [], 1);
      await recordDeployment(store, "d1", [{ hostName: "a", storePath: SYS_A, heldForWindow: true }], ActivationMode.ACTIVATION_MODE_UNSPECIFIED, 2);
      const [after] = await recordDeployment(store, "d2", [{ hostName: "a", storePath: SYS_B }], ActivationMode.ACTIVATION_MODE_UNSPECIFIED, 3);
      assert.deepEqual([after?.heldForWindow, after?.desiredActivate], [false, true]);
      assert.equal(await store.releaseHeld("a", "d1"), undefined);
    });
  });

  describe(`${backend.name}: durability`, () => {
    test("closing and reopening the database finds hosts, deployments and events", async () => {
      const { store, file } = await open();
      await store.addHost("a", hashToken("a"), ["x"], 1);
      await recordDeployment(store, "d1", [{ hostName: "a", storePath: SYS_A }], ActivationMode.ACTIVATION_MODE_TEST, 2);
      await store.recordReport("a", { currentSystem: SYS_A, appliedSerial: 1, lastErrorOutput: "multi\nline\u00e9" });
      await store.recordReports([{ name: "a", report: {}, event: { atMs: 3, kind: "activation-succeeded", data: { serial: 1 } } }]);
      const expected = await store.getHost("a");
      await store.close();
      stores.splice(stores.indexOf(store), 1);

      const { store: reopened } = await open(file);
      assert.deepEqual(await reopened.getHost("a"), expected);
      assert.deepEqual(
        (await reopened.listEvents("a", 10)).map((event) => [event.kind, event.data["serial"]]),
        [
          ["desired-assigned", 1],
          ["activation-succeeded", 1],
        ],
      );
      // Migrations are not re-run on an existing database, and serials continue.
      const next = await recordDeployment(reopened, "d2", [{ hostName: "a", storePath: SYS_B }], ActivationMode.ACTIVATION_MODE_SWITCH, 4);
      assert.equal(next[0]?.desiredSerial, 2);
      await rejectsCode(reopened.addHost("a", hashToken("a"), [], 5), "E_HOST_EXISTS");
    });

    test("a second store on the same database sees committed writes", async () => {
      const { store, file } = await open();
      const { store: other } = await open(file);
      await store.addHost("shared", hashToken("s"), [], 1);
      assert.equal((await other.getHost("shared"))?.name, "shared");
    });
  });

  describe(`${backend.name}: host names ignore case`, () => {
    test("Web-2 is stored, found and deployed as web-2; adding web-2 after Web-2 → E_HOST_EXISTS", async () => {
      const { store } = await open();
      const added = await store.addHost("Web-2", hashToken("first"), [], 1);
      assert.equal(added.name, "web-2");
      await rejectsCode(store.addHost("web-2", hashToken("second"), [], 2), "E_HOST_EXISTS");
      await rejectsCode(store.addHost("WEB-2", hashToken("second"), [], 2), "E_HOST_EXISTS");
      assert.equal((await store.getHost("WEB-2"))?.tokenHash, hashToken("first"));
      const [deployed] = await recordDeployment(store, "d1", [{ hostName: "wEb-2", storePath: SYS_A }], ActivationMode.ACTIVATION_MODE_SWITCH, 3);
      assert.equal(deployed?.name, "web-2");
      assert.equal((await store.recordReport("WEB-2", { lastSeenMs: 4 })).lastSeenMs, 4);
      assert.deepEqual(
        (await store.listHosts(["Web-2"])).map((host) => [host.name, host.desiredSystem]),
        [["web-2", SYS_A]],
      );
      await store.removeHost("WEB-2");
      assert.deepEqual(await store.listHosts(), []);
    });
  });
}
