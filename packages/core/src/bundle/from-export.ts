import { createHash } from "node:crypto";
import { open, stat, unlink, type FileHandle } from "node:fs/promises";
import { FerryError } from "../errors.js";
import type { StreamingRunner } from "../runner.js";
import { writeFully } from "../write-fully.js";
import { toNixBase32 } from "./keys.js";
import type { BundleManifest, OmittedPath } from "./manifest.js";
import { bundleIdentity, bundleRoots, type BundleIdentityOptions } from "./create.js";
import { scanExport, type ExportEntry } from "./export-scan.js";
import { writeStreamedBundle } from "./write-streamed.js";

export interface BundleFromExportOptions extends BundleIdentityOptions {
  /** Runs the compressor, as for a bundle from the store. */
  runner: StreamingRunner;
  /**
   * A `nix-store --export` file, or the stream itself (standard input): a
   * stream, or a file that is not a regular one (a pipe), is first copied
   * beside the output, because the bundle's signed head names every path and
   * NAR size before the first NAR, and the export says them only as it goes.
   */
  exportSource: string | AsyncIterable<Buffer>;
}

const READ_CHUNK = 1 << 20;

function incomplete(message: string): FerryError {
  return new FerryError("E_EXPORT_INCOMPLETE", message);
}

/** The NAR bytes of one export entry, read from the file where the scan found them. */
async function* narBytes(handle: FileHandle, entry: ExportEntry): AsyncGenerator<Buffer> {
  let done = 0;
  while (done < entry.narSize) {
    const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK, entry.narSize - done));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, entry.narOffset + done);
    if (bytesRead === 0) throw new FerryError("E_EXPORT_MALFORMED", `the export file shrank while the NAR of ${entry.storePath} was read`);
    done += bytesRead;
    yield bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead);
  }
}

async function spool(source: AsyncIterable<Buffer>, file: string): Promise<void> {
  // "w": a copy left by a crashed run under the same name is ours to replace.
  const out = await open(file, "w", 0o600);
  try {
    for await (const chunk of source) await writeFully(out, [chunk]);
  } finally {
    await out.close();
  }
}

/** The hosts' closures, followed through the references the export records. */
function closureOf(roots: readonly string[], hosts: Record<string, string>, byPath: ReadonlyMap<string, ExportEntry>): ExportEntry[] {
  for (const [host, path] of Object.entries(hosts)) {
    if (!byPath.has(path))
      throw incomplete(`the export lacks ${path}, the system of ${host}; export the whole closure: nix-store --export $(nix-store -qR ${path})`);
  }
  const found = new Map<string, ExportEntry>();
  const queue = [...roots];
  while (queue.length > 0) {
    const path = queue.pop() as string;
    if (found.has(path)) continue;
    const entry = byPath.get(path);
    if (!entry)
      throw incomplete(`the export lacks ${path}, which the hosts' closures need; export the whole closure: nix-store --export $(nix-store -qR ROOT)`);
    found.set(path, entry);
    for (const reference of entry.references) if (!found.has(reference)) queue.push(reference);
  }
  return [...found.values()];
}

/**
 * Wraps a `nix-store --export` stream into a signed format 2 bundle without
 * reading the store. The export's own record of each path (references) is
 * taken as it is; the NAR hashes come from nowhere but the bytes: each NAR is
 * hashed while it is compressed into the bundle, and that hash goes into the
 * narinfo and the signed manifest. An export carries no hash and no
 * signature, so the bundle's signature vouches for exactly the bytes that were
 * wrapped: whoever signs must trust where the export came from. The site then
 * checks each NAR against the signed hash, as for any bundle.
 */
export async function createBundleFromExport(options: BundleFromExportOptions): Promise<{ manifest: BundleManifest; bytes: number }> {
  const roots = bundleRoots(options);
  const identity = bundleIdentity(options);
  let file = typeof options.exportSource === "string" ? options.exportSource : undefined;
  let spooled: string | undefined;
  if (file === undefined || !(await stat(file)).isFile()) {
    spooled = `${options.output}.export.partial`;
    await spool(file === undefined ? (options.exportSource as AsyncIterable<Buffer>) : (await open(file, "r")).createReadStream(), spooled).catch(
      async (error: unknown) => {
        await unlink(spooled as string).catch(() => undefined);
        throw error;
      },
    );
    file = spooled;
  }
  const handle = await open(file, "r");
  try {
    const entries = await scanExport(file);
    const closure = closureOf(roots, options.hosts, new Map(entries.map((entry) => [entry.storePath, entry])));
    const present = new Set(options.since?.storePaths ?? []);
    const omitted: OmittedPath[] = [];
    for (const entry of closure.filter((item) => present.has(item.storePath))) {
      const hash = createHash("sha256");
      for await (const chunk of narBytes(handle, entry)) hash.update(chunk);
      omitted.push({ storePath: entry.storePath, narHash: `sha256:${toNixBase32(hash.digest())}`, narSize: entry.narSize });
    }
    const carried = closure.filter((item) => !present.has(item.storePath));
    const byPath = new Map(carried.map((entry) => [entry.storePath, entry]));
    return await writeStreamedBundle({
      runner: options.runner,
      paths: carried.map((entry) => ({ path: entry.storePath, narHash: null, narSize: entry.narSize, references: entry.references })),
      omitted,
      narSource: (storePath) => narBytes(handle, byPath.get(storePath) as ExportEntry),
      ...identity,
    });
  } finally {
    await handle.close();
    if (spooled) await unlink(spooled).catch(() => undefined);
  }
}
