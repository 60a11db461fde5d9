import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { Metadata, credentials, type ServiceError } from "@grpc/grpc-js";
import { parseSha256, toNixBase32 } from "@ferry/core";
import {
  ActivationMode,
  OperatorServiceClient,
  type DeployRequest,
  type DeployResponse,
  type RemoveCachePathsRequest,
  type RemoveCachePathsResponse,
} from "@ferry/protocol";
import { startTestController, type TestController } from "./controller-fixture.js";

// What the controller's cache does with signatures and removals: a narinfo
// uploaded again adds its signatures or is refused as a conflict; deploys
// refuse closures the cache holds no signature for; `cache rm` keeps what a
// host may need.

let t: TestController;
let client: OperatorServiceClient;
before(async () => {
  t = await startTestController();
  client = new OperatorServiceClient(`127.0.0.1:${t.controller.grpcPort}`, credentials.createInsecure());
});
after(async () => {
  client?.close();
  await t.stop();
});

const basic = (): string => `Basic ${Buffer.from(`ferry:${t.adminToken}`).toString("base64")}`;
const storePath = (name: string): string => `/nix/store/${toNixBase32(randomBytes(20))}-${name}`;
const hashOf = (path: string): string => path.slice("/nix/store/".length, "/nix/store/".length + 32);

interface Cached {
  path: string;
  nar: string;
  narHash: string;
  narSize: number;
  references: string[];
}

function narinfoText(entry: Cached, sigs: string[], override: Partial<Cached> = {}): string {
  const e = { ...entry, ...override };
  return [
    `StorePath: ${e.path}`,
    `URL: ${e.nar}`,
    "Compression: none",
    `NarHash: ${e.narHash}`,
    `NarSize: ${e.narSize}`,
    `References: ${e.references.map((ref) => ref.slice("/nix/store/".length)).join(" ")}`,
    ...sigs.map((sig) => `Sig: ${sig}`),
    "",
  ].join("\n");
}

async function put(relative: string, body: string | Uint8Array): Promise<Response> {
  return fetch(`${t.baseUrl}/cache/${relative}`, { method: "PUT", body, headers: { authorization: basic() }, signal: AbortSignal.timeout(5000) });
}
async function get(relative: string): Promise<Response> {
  return fetch(`${t.baseUrl}/cache/${relative}`, { signal: AbortSignal.timeout(5000) });
}
async function sigsOf(path: string): Promise<string[]> {
  const text = await (await get(`${hashOf(path)}.narinfo`)).text();
  return text
    .split("\n")
    .filter((line) => line.startsWith("Sig: "))
    .map((line) => line.slice(5));
}

/** Uploads a NAR and its narinfo as nix copy would; `nar` reuses an uploaded NAR. */
async function upload(name: string, references: string[] = [], sigs: string[] = [], nar?: Buffer): Promise<Cached> {
  const bytes = nar ?? randomBytes(512);
  const digest = createHash("sha256").update(bytes).digest();
  const entry: Cached = {
    path: storePath(name),
    nar: `nar/${toNixBase32(digest)}.nar`,
    narHash: `sha256:${toNixBase32(digest)}`,
    narSize: bytes.length,
    references,
  };
  assert.equal((await put(entry.nar, bytes)).status, 201);
  assert.equal((await put(`${hashOf(entry.path)}.narinfo`, narinfoText(entry, sigs))).status, 201);
  return entry;
}

const sig = (key: string): string => `${key}:${randomBytes(64).toString("base64")}`;

type Unary<Req, Res> = (request: Req, metadata: Metadata, callback: (error: ServiceError | null, response: Res) => void) => unknown;

function call<Req, Res>(method: Unary<Req, Res>, request: Req): Promise<Res> {
  const metadata = new Metadata();
  metadata.set("authorization", `Bearer ${t.adminToken}`);
  return new Promise((resolve, reject) => method.call(client, request, metadata, (error, response) => (error ? reject(error) : resolve(response))));
}
const deploy = (request: DeployRequest): Promise<DeployResponse> => call<DeployRequest, DeployResponse>(client.deploy, request);
const removeCachePaths = (storePaths: string[]): Promise<RemoveCachePathsResponse> =>
  call<RemoveCachePathsRequest, RemoveCachePathsResponse>(client.removeCachePaths, { storePaths });
async function refusedWith<Res>(promise: Promise<Res>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    const failure = error as ServiceError;
    return { code: String(failure.metadata.get("ferry-error-code")[0]), message: failure.details };
  }
  assert.fail("the call succeeded");
}

describe("narinfo uploaded again", () => {
  test("same contents: its new signatures are added, known ones not repeated", async () => {
    const entry = await upload("repaired");
    assert.deepEqual(await sigsOf(entry.path), []);
    const first = sig("fleet-1");
    assert.equal((await put(`${hashOf(entry.path)}.narinfo`, narinfoText(entry, [first]))).status, 201);
    assert.deepEqual(await sigsOf(entry.path), [first]);
    const second = sig("fleet-2");
    assert.equal((await put(`${hashOf(entry.path)}.narinfo`, narinfoText(entry, [second, first]))).status, 201);
    assert.deepEqual(await sigsOf(entry.path), [first, second]);
    // A plain re-upload (nix copy racing another) changes nothing.
    assert.equal((await put(`${hashOf(entry.path)}.narinfo`, narinfoText(entry, []))).status, 201);
    assert.deepEqual(await sigsOf(entry.path), [first, second]);
  });

  test("the NAR hash may be written in either of Nix's forms", async () => {
    const entry = await upload("sri");
    const sri = `sha256-${(parseSha256(entry.narHash) as Buffer).toString("base64")}`;
    const one = sig("fleet-1");
    assert.equal((await put(`${hashOf(entry.path)}.narinfo`, narinfoText(entry, [one], { narHash: sri }))).status, 201);
    assert.deepEqual(await sigsOf(entry.path), [one]);
  });

  test("other contents under the same store path: 409 E_CACHE_CONFLICT, the stored narinfo unchanged", async () => {
    const dep = await upload("dep");
    const entry = await upload("conflicted", [], [sig("fleet-1")]);
    const before = await (await get(`${hashOf(entry.path)}.narinfo`)).text();
    const otherHash = `sha256:${toNixBase32(createHash("sha256").update("other").digest())}`;
    for (const override of [{ narHash: otherHash }, { narSize: entry.narSize + 1 }, { references: [dep.path] }]) {
      const response = await put(`${hashOf(entry.path)}.narinfo`, narinfoText(entry, [sig("fleet-1")], override));
      assert.equal(response.status, 409, JSON.stringify(override));
      assert.match(await response.text(), /^E_CACHE_CONFLICT: the cache holds .* with NAR hash .*other contents/);
    }
    assert.equal(await (await get(`${hashOf(entry.path)}.narinfo`)).text(), before);
  });

  test("signatures uploaded at the same moment all land", async () => {
    const entry = await upload("busy");
    const sigs = Array.from({ length: 12 }, (_, i) => sig(`key-${i}`));
    const responses = await Promise.all(sigs.map((one) => put(`${hashOf(entry.path)}.narinfo`, narinfoText(entry, [one]))));
    assert.deepEqual(
      responses.map((response) => response.status),
      sigs.map(() => 201),
    );
    assert.deepEqual((await sigsOf(entry.path)).sort(), [...sigs].sort());
  });
});

describe("deploy and the cache's signatures", () => {
  test("a closure with an unsigned path is refused (E_CACHE_UNSIGNED, nothing recorded) unless allowUnsigned", async () => {
    await t.controller.store.addHost("web-1", "x", [], Date.now());
    const lib = await upload("lib");
    const system = await upload("system", [lib.path], [sig("fleet-1")]);
    const refused = await refusedWith(
      deploy({
        targets: [{ hostName: "web-1", storePath: system.path, intent: undefined }],
        mode: ActivationMode.ACTIVATION_MODE_SWITCH,
        ignoreWindows: false,
        allowUnsigned: false,
      }),
    );
    assert.equal(refused.code, "E_CACHE_UNSIGNED");
    assert.match(refused.message, new RegExp(`no signature for 1 path\\(s\\) of the closure of ${system.path}: ${lib.path}`));
    assert.equal((await t.controller.store.getHost("web-1"))?.desiredSerial, 0);

    const allowed = await deploy({
      targets: [{ hostName: "web-1", storePath: system.path, intent: undefined }],
      mode: ActivationMode.ACTIVATION_MODE_SWITCH,
      ignoreWindows: false,
      allowUnsigned: true,
    });
    assert.equal(allowed.hosts[0]?.desiredSystem, system.path);

    // Signed by pushing again: the same deploy passes without the override.
    assert.equal((await put(`${hashOf(lib.path)}.narinfo`, narinfoText(lib, [sig("fleet-1")]))).status, 201);
    const signed = await deploy({
      targets: [{ hostName: "web-1", storePath: system.path, intent: undefined }],
      mode: ActivationMode.ACTIVATION_MODE_SWITCH,
      ignoreWindows: false,
      allowUnsigned: false,
    });
    assert.equal(signed.hosts[0]?.desiredSerial, 2);
  });
});

describe("ferry cache rm (RemoveCachePaths)", () => {
  test("refused while a host's desired, current or previous system needs a path; works for paths nobody needs", async () => {
    const store = t.controller.store;
    await store.addHost("db-1", "x", [], Date.now());
    const oldLib = await upload("old-lib", [], [sig("fleet-1")]);
    const oldSystem = await upload("old-system", [oldLib.path], [sig("fleet-1")]);
    const newSystem = await upload("new-system", [], [sig("fleet-1")]);
    const wantedLib = await upload("wanted-lib", [], [sig("fleet-1")]);
    const desired = await upload("desired-system", [wantedLib.path], [sig("fleet-1")]);
    const sharedNar = randomBytes(300);
    const orphan = await upload("orphan", [], [], sharedNar);
    const twin = await upload("twin", [], [], sharedNar);
    assert.equal(orphan.nar, twin.nar);

    // The host ran old-system, then new-system: old-system becomes its previous one.
    await store.recordReport("db-1", { currentSystem: oldSystem.path });
    await store.recordReport("db-1", { currentSystem: newSystem.path });
    assert.equal((await store.getHost("db-1"))?.previousSystem, oldSystem.path);
    await deploy({
      targets: [{ hostName: "db-1", storePath: desired.path, intent: undefined }],
      mode: ActivationMode.ACTIVATION_MODE_SWITCH,
      ignoreWindows: false,
      allowUnsigned: false,
    });

    for (const [path, holder] of [
      [wantedLib.path, `db-1's desired system, ${desired.path} \\(it is in its closure\\)`],
      [newSystem.path, `db-1's current system, ${newSystem.path}; nothing`],
      [oldLib.path, `db-1's previous system, ${oldSystem.path} \\(it is in its closure\\)`],
    ] as const) {
      const refused = await refusedWith(removeCachePaths([orphan.path, path]));
      assert.equal(refused.code, "E_CACHE_PATH_IN_USE", path);
      assert.match(refused.message, new RegExp(`^${path} is needed by ${holder}`));
    }
    assert.equal((await get(`${hashOf(orphan.path)}.narinfo`)).status, 200, "a refusal removes nothing");

    const absent = storePath("never-pushed");
    const removed = await removeCachePaths([orphan.path, absent]);
    assert.deepEqual(removed, { removed: [orphan.path], absent: [absent] });
    assert.equal((await get(`${hashOf(orphan.path)}.narinfo`)).status, 404);
    assert.equal((await get(orphan.nar)).status, 200, "the NAR another narinfo names stays");
    await removeCachePaths([twin.path]);
    assert.equal((await get(twin.nar)).status, 404, "the last narinfo naming a NAR takes it along");

    const bad = await refusedWith(removeCachePaths(["/nix/store/../etc"]));
    assert.equal(bad.code, "E_BAD_STORE_PATH");
  });
});
