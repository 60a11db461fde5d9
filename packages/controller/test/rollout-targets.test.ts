// Which hosts a rollout names, whatever case the request spells them in.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FerryError, hashToken } from "@ferry/core";
import { ActivationMode, type StartRolloutRequest } from "@ferry/protocol";
import type { BinaryCache } from "../src/cache/binary-cache.js";
import { manifestDigest, planRollout } from "../src/rollouts/start.js";
import { openSqliteStore } from "../src/store/open-store.js";

const root = mkdtempSync(join(tmpdir(), "ferry-rollout-targets-"));
const store = await openSqliteStore(join(root, "state.sqlite"));
after(async () => {
  await store.close();
  rmSync(root, { recursive: true, force: true });
});

const SYS_A = "/nix/store/pz5wv3mkbf4bwihvsz8yqydfwb9bfhy5-nixos-system-a";
const SYS_B = "/nix/store/1zy01hjzwvvia6h9dq5xar88v77fgh9x-nixos-system-b";
const cache = { closureInfos: async () => new Map() } as unknown as BinaryCache;

function request(patch: Partial<StartRolloutRequest>): StartRolloutRequest {
  return {
    targets: [],
    hostNames: [],
    tags: [],
    manifest: {},
    policy: undefined,
    environment: "",
    afterEnvironment: "",
    requestedBy: "test",
    mode: ActivationMode.ACTIVATION_MODE_UNSPECIFIED,
    allowUnsigned: false,
    intents: [],
    ...patch,
  };
}

describe("rollout targets ignore the case of host names", () => {
  test("HOST=PATH, --hosts and manifest keys in any case name the stored hosts", async () => {
    await store.addHost("web-2", hashToken("a"), ["prod"], 1);
    await store.addHost("db-1", hashToken("b"), ["prod"], 1);
    const fromTargets = await planRollout(store, cache, request({ targets: [{ hostName: "Web-2", storePath: SYS_A, intent: undefined }] }), 1);
    assert.deepEqual(
      fromTargets.hosts.map((host) => host.name),
      ["web-2"],
    );
    const fromManifest = await planRollout(store, cache, request({ manifest: { "WEB-2": SYS_A, "DB-1": SYS_B }, hostNames: ["Web-2"] }), 1);
    assert.deepEqual(
      fromManifest.hosts.map((host) => [host.name, host.storePath]),
      [["web-2", SYS_A]],
    );
    // The same manifest however it is spelled: `--after` finds it.
    assert.equal(fromManifest.manifestDigest, manifestDigest({ "db-1": SYS_B, "web-2": SYS_A }));
    const tagged = await planRollout(store, cache, request({ manifest: { "Web-2": SYS_A, "db-1": SYS_B }, tags: ["prod"] }), 1);
    assert.deepEqual(
      tagged.hosts.map((host) => host.name),
      ["db-1", "web-2"],
    );
  });

  test("one host spelled twice is refused rather than one spelling silently winning", async () => {
    for (const given of [
      request({ manifest: { "Web-2": SYS_A, "web-2": SYS_B } }),
      request({
        targets: [
          { hostName: "Web-2", storePath: SYS_A, intent: undefined },
          { hostName: "web-2", storePath: SYS_B, intent: undefined },
        ],
      }),
    ]) {
      await assert.rejects(
        planRollout(store, cache, given, 1),
        (error: unknown) => error instanceof FerryError && error.code === "E_BAD_HOST_NAME" && /same host \(web-2\)/.test(error.message),
      );
    }
  });
});
