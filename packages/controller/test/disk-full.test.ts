// The controller's disk fills up (a small tmpfs as its data directory): a
// cache upload and a database write fail with E_NO_SPACE, leave no partial
// file, the controller keeps serving, and it recovers once space is freed.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, openSync, readdirSync, rmSync, writeSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Metadata, credentials, type ServiceError } from "@grpc/grpc-js";
import { silentLogger } from "@ferry/core";
import { startController, type RunningController } from "@ferry/controller";
import { OperatorServiceClient, type AddHostResponse } from "@ferry/protocol";

const isRoot = process.getuid?.() === 0;
const mountPoint = mkdtempSync(join(tmpdir(), "ferry-full-"));
let controller: RunningController;
let client: OperatorServiceClient;
let token = "";

before(async () => {
  if (!isRoot) return;
  const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", "size=24m", "ferry-full", mountPoint]);
  assert.equal(mounted.status, 0, mounted.stderr.toString());
  controller = await startController({
    dataDir: join(mountPoint, "data"),
    listen: { host: "127.0.0.1", port: 0 },
    grpcListen: { host: "127.0.0.1", port: 0 },
    log: silentLogger(),
  });
  token = (await import("node:fs")).readFileSync(join(mountPoint, "data", "admin.token"), "utf8").trim();
  client = new OperatorServiceClient(`127.0.0.1:${controller.grpcPort}`, credentials.createInsecure());
});

after(async () => {
  if (!isRoot) return;
  client?.close();
  await controller?.stop();
  spawnSync("umount", [mountPoint]);
  rmSync(mountPoint, { recursive: true, force: true });
});

function addHost(name: string): Promise<{ error?: string; response?: AddHostResponse }> {
  const metadata = new Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  return new Promise((resolve) =>
    client.addHost({ name, tags: [] }, metadata, (error: ServiceError | null, response) =>
      resolve(error ? { error: String(error.metadata.get("ferry-error-code")[0] ?? error.message) } : { response }),
    ),
  );
}

function cacheEntries(): string[] {
  const cache = join(mountPoint, "data", "cache");
  return [...readdirSync(cache), ...readdirSync(join(cache, "nar")).map((name) => `nar/${name}`)].sort();
}

/** Writes zeros until the filesystem is full; returns the filler's path. */
function fill(): string {
  const filler = join(mountPoint, "filler");
  const fd = openSync(filler, "w");
  const block = Buffer.alloc(64 * 1024);
  try {
    for (;;) writeSync(fd, block);
  } catch (error) {
    assert.equal((error as NodeJS.ErrnoException).code, "ENOSPC");
  } finally {
    closeSync(fd);
  }
  return filler;
}

test(
  "a full disk: uploads and database writes fail with E_NO_SPACE, leave nothing half-written, and the controller recovers",
  { skip: isRoot ? false : "needs root to mount a tmpfs" },
  async () => {
    const before = cacheEntries();
    // A NAR larger than the whole filesystem.
    const nar = `nar/${"3".repeat(52)}.nar`;
    const upload = await fetch(`http://127.0.0.1:${controller.httpPort}/cache/${nar}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${token}` },
      body: Buffer.alloc(40 * 1024 * 1024, 1),
    });
    assert.equal(upload.status, 507);
    assert.match(await upload.text(), /^E_NO_SPACE: /);
    assert.deepEqual(cacheEntries(), before, "no partial NAR or temp file stays behind");

    const filler = fill();
    let refusal: string | undefined;
    for (let i = 0; i < 200 && refusal === undefined; i++) refusal = (await addHost(`full-${i}`)).error;
    assert.equal(refusal, "E_NO_SPACE", "a database write on a full disk reports E_NO_SPACE");
    const health = await fetch(`http://127.0.0.1:${controller.httpPort}/healthz`);
    assert.equal(health.status, 200, "the controller still answers");

    rmSync(filler);
    const recovered = await addHost("after-the-flood");
    assert.equal(recovered.error, undefined, "once space is freed, writes succeed again");
    const listed = await controller.store.listHosts();
    assert.ok(listed.some((host) => host.name === "after-the-flood"));
  },
);
