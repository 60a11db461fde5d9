import { mkdir, mkdtemp, open, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { IncomingMessage, ServerResponse } from "node:http";
import {
  FerryError,
  modeToWire,
  parseOptionalMode,
  writeFully,
  parseNarInfo,
  parseStorePath,
  toFerryError,
  verifyBundle,
  type BundleManifest,
  type NarInfo,
} from "@ferry/core";
import { PublishBundleResponse, Rollout, RolloutPolicy } from "@ferry/protocol";
import { toRolloutMessage } from "./rollout-service.js";
import type { RolloutRecord } from "../store/rollout-records.js";
import type { BundleSite } from "./site-service.js";
import type { Principal } from "../auth/authorize.js";
import { refuseUpload } from "../edge/refuse-upload.js";
import type { BinaryCache } from "../cache/binary-cache.js";

/** Where the single-pass import is served, beside the cache prefix on the HTTP listener. */
export const BUNDLE_UPLOAD_PATH = "/bundles/upload";
const STAGING_PREFIX = ".bundle-";
const WRITE_BATCH = 1 << 20;
/** Staged files whose fsync may run at once in the background; more wait for the oldest. */
const SYNCS_IN_FLIGHT = 32;

/**
 * A staging directory untouched this long is a crash's leftover. Not all of
 * them at start: in a cache directory shared by replicas, a young one is
 * another controller's import in progress (a file being written does not
 * touch its directory, hence hours, not minutes).
 */
const STALE_STAGING_MS = 6 * 3_600_000;

/** Staging directories of imports a crash interrupted: never published, so removed at start. */
export async function removeStaleStaging(cacheDir: string, nowMs = Date.now()): Promise<void> {
  for (const name of await readdir(cacheDir).catch(() => [] as string[])) {
    if (!name.startsWith(STAGING_PREFIX)) continue;
    const dir = join(cacheDir, name);
    const touched = Math.max(
      ...(await Promise.all(
        [dir, join(dir, "nar")].map((d) =>
          stat(d).then(
            (s) => s.mtimeMs,
            () => 0,
          ),
        ),
      )),
    );
    if (nowMs - touched > STALE_STAGING_MS) await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The files of one bundle, written into a directory of their own inside the
 * cache directory (same filesystem, so publishing is a rename) while the
 * bundle is being verified. Nothing here is served: the cache only serves
 * `NAME.narinfo` and `nar/NAME` at its top level.
 */
class Staging {
  readonly narinfos = new Map<string, NarInfo>();
  private readonly syncs: Promise<void>[] = [];
  private readonly files = new Set<string>();

  private constructor(readonly dir: string) {}

  static async create(cacheDir: string): Promise<Staging> {
    const dir = await mkdtemp(join(cacheDir, STAGING_PREFIX));
    await mkdir(join(dir, "nar"));
    return new Staging(dir);
  }

  /** Writes one file in 1 MiB batches; its fsync starts at once and overlaps the rest of the upload. */
  async write(name: string, body: AsyncIterable<Buffer>): Promise<void> {
    if (this.files.has(name)) {
      // Two paths with identical NARs share a file; the verifier still hashes this copy.
      for await (const _chunk of body) void _chunk;
      return;
    }
    const handle = await open(join(this.dir, name), "wx", 0o644);
    const small: Buffer[] = [];
    try {
      let batch: Buffer[] = [];
      let size = 0;
      let writing: Promise<void> = Promise.resolve();
      for await (const chunk of body) {
        if (name.endsWith(".narinfo")) small.push(chunk);
        batch.push(chunk);
        size += chunk.length;
        if (size >= WRITE_BATCH) {
          await writing;
          writing = writeFully(handle, batch);
          batch = [];
          size = 0;
        }
      }
      await writing;
      if (batch.length > 0) await writeFully(handle, batch);
    } catch (error) {
      await handle.close();
      throw error;
    }
    this.files.add(name);
    // Unverified until verifyBundle resolves; parsed only to check the closure before publishing.
    if (name.endsWith(".narinfo")) this.narinfos.set(name, parseNarInfo(Buffer.concat(small).toString("utf8")));
    while (this.syncs.length >= SYNCS_IN_FLIGHT) await this.syncs.shift();
    const sync = handle.sync().finally(() => handle.close());
    sync.catch(() => undefined);
    this.syncs.push(sync);
  }

  /** Every staged file is on disk. */
  async synced(): Promise<void> {
    while (this.syncs.length > 0) await this.syncs.shift();
  }

  /** Moves the files into the cache, which orders NARs before narinfos and starts serving them. */
  async publish(cache: BinaryCache): Promise<void> {
    await this.synced();
    await cache.publishStaged(this.dir, this.files);
  }

  async remove(): Promise<void> {
    await Promise.allSettled(this.syncs);
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Refuses unless every host's closure is served by the cache once the staged files are in it. */
async function requireClosuresComplete(site: BundleSite, manifest: BundleManifest, staging: Staging): Promise<void> {
  const staged = new Map([...staging.narinfos.values()].map((info) => [info.storePath, info]));
  const missing = new Set<string>();
  const seen = new Set<string>(Object.values(manifest.hosts));
  const queue = [...seen];
  while (queue.length > 0) {
    const path = queue.pop() as string;
    let info = staged.get(path);
    if (!info) {
      info = await site.deps.cache.narInfo(parseStorePath(path).hash);
      if (info && !(await stat(join(site.deps.cache.dir, info.url)).catch(() => undefined))) info = undefined;
    }
    if (!info) {
      missing.add(path);
      continue;
    }
    for (const reference of info.references) {
      if (seen.has(reference)) continue;
      seen.add(reference);
      queue.push(reference);
    }
  }
  if (missing.size > 0) {
    const shown = [...missing].sort().slice(0, 5).join(", ");
    throw new FerryError("E_PATH_NOT_IN_CACHE", `the cache would lack ${missing.size} path(s) of the hosts' closures: ${shown}`);
  }
}

/** `rollout=` carries the policy as RolloutPolicy's JSON form; absent, the import starts no rollout. */
function rolloutPolicyOf(value: string | null): RolloutPolicy | undefined {
  if (value === null) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new FerryError("E_BAD_ARGUMENT", "rollout must be a rollout policy in JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new FerryError("E_BAD_ARGUMENT", "rollout must be a JSON object");
  return RolloutPolicy.fromJSON(parsed);
}

function toRolloutMessageJson(record: RolloutRecord): unknown {
  return Rollout.toJSON(toRolloutMessage(record));
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  response.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) }).end(text);
}

const STATUS_BY_CODE: Record<string, number> = { E_AUTH: 401, E_SCOPE: 403, E_INTERNAL: 500, E_UNKNOWN_HOST: 404, E_BUNDLE_REPLAYED: 409, E_NO_SPACE: 507 };

/**
 * `PUT /bundles/upload?deploy=1&mode=switch` (or `?rollout=POLICY-JSON`, which
 * starts a rollout of the bundle's hosts as `ferry rollout start` would) with the operator token and the
 * bundle file as the body: one pass over the bundle. The controller checks the
 * manifest signature against its own trusted keys and the sequence, hosts and
 * omitted paths as soon as the head has arrived, then writes each file into a
 * staging directory while checking its size and SHA-256 and each narinfo's Nix
 * signature. Only when the whole bundle verified and the hosts' closures are
 * complete are the staged files synced, renamed into the cache (NARs before
 * narinfos) and the import recorded; on any failure the staging directory is
 * removed, so a refused bundle leaves nothing in the cache, ledger or database.
 */
export async function handleBundleUpload(site: BundleSite, request: IncomingMessage, response: ServerResponse, admit: () => Principal): Promise<void> {
  if (request.method !== "PUT") {
    refuseUpload(request, response, 405, "bundles are uploaded with PUT\n", { allow: "PUT" });
    return;
  }
  let staging: Staging | undefined;
  try {
    const importer = admit();
    const query = new URL(request.url ?? "/", "http://localhost").searchParams;
    const deploy = query.get("deploy") === "1";
    const mode = modeToWire(parseOptionalMode(query.get("mode"), "mode"));
    const rollout = rolloutPolicyOf(query.get("rollout"));
    if (rollout && deploy) throw new FerryError("E_BAD_ARGUMENT", "deploy and rollout exclude each other");
    // With a rollout, the hosts must exist just as with a deployment.
    const targeted = deploy || rollout !== undefined;
    staging = await Staging.create(site.deps.cache.dir);
    const stage = staging;
    let result: PublishBundleResponse;
    let started: RolloutRecord | undefined;
    let bytes: number;
    try {
      const verified = await verifyBundle(request as AsyncIterable<Buffer>, {
        trustedKeys: await site.trustedKeys(),
        onManifest: async ({ manifest }) => {
          await site.precheck(manifest, targeted, mode);
          // A bad policy or a host busy in another rollout is refused before a byte is staged.
          if (rollout) await site.planRollout(manifest, mode, rollout, "later", importer.name);
        },
        sink: async (name, _size, body) => {
          // The cache serves its own nix-cache-info.
          if (name.startsWith("nar/") || name.endsWith(".narinfo")) await stage.write(name, body);
        },
      });
      const { manifest } = verified;
      bytes = verified.bytes;
      result = await site.serialized(async () => {
        await site.precheck(manifest, targeted, mode);
        await requireClosuresComplete(site, manifest, stage);
        if (rollout) await site.planRollout(manifest, mode, rollout, "later", importer.name);
        await stage.publish(site.deps.cache);
        // Planned again with the closures in the cache, before the ledger records the import.
        const plan = rollout ? await site.planRollout(manifest, mode, rollout, "check", importer.name) : undefined;
        const recorded = await site.record(manifest, verified.manifestBytes, verified.signer, deploy, mode, importer.name);
        if (plan) started = await site.startRollout(plan);
        return recorded;
      });
    } finally {
      // Gone before the client hears anything: a refusal leaves no trace, even for a moment.
      await stage.remove();
    }
    sendJson(response, 200, { response: PublishBundleResponse.toJSON(result), bytes, ...(started ? { rollout: toRolloutMessageJson(started) } : {}) });
  } catch (error) {
    const ferry = toFerryError(error);
    site.deps.log.info({ rpc: "bundles/upload", code: ferry.code, err: ferry.message }, "bundle refused");
    const status = STATUS_BY_CODE[ferry.code] ?? 400;
    const answer = { error: { code: ferry.code, message: ferry.message } };
    if (response.headersSent) request.socket.destroy();
    else if (request.complete) sendJson(response, status, answer);
    // A bounded part of what the client still sends is read, so it sees the answer rather than a reset.
    else refuseUpload(request, response, status, `${JSON.stringify(answer)}\n`, { "content-type": "application/json" });
  }
}
