import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { FerryError } from "../errors.js";
import { parseNarInfo, type NarInfo } from "../narinfo.js";
import { parseStorePath } from "../validate.js";
import type { BundleManifest, OmittedPath } from "./manifest.js";
import { writeBundle } from "./write.js";
import { bundleIdentity, bundleRoots, type BundleIdentityOptions } from "./create.js";

export interface BundleFromFileCacheOptions extends BundleIdentityOptions {
  /** A Nix file binary cache, as `nix copy --to file://DIR` writes it (any compression Nix writes). */
  cacheDir: string;
}

async function readNarInfo(cacheDir: string, storePath: string): Promise<NarInfo> {
  const file = join(cacheDir, `${parseStorePath(storePath).hash}.narinfo`);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    throw new FerryError(
      "E_BAD_ARGUMENT",
      `${cacheDir} has no narinfo for ${storePath}; copy the closure there first (nix copy --to file://${cacheDir} ${storePath})`,
    );
  }
  const info = parseNarInfo(text);
  if (info.storePath !== storePath) throw new FerryError("E_BAD_ARGUMENT", `${file} describes ${info.storePath}, not ${storePath}`);
  if (!(await stat(join(cacheDir, info.url)).catch(() => undefined))) {
    throw new FerryError("E_BAD_ARGUMENT", `${cacheDir} lacks ${info.url}, the NAR of ${storePath}`);
  }
  return info;
}

/** The hosts' closures in a file cache, followed through its narinfos, less what the site inventory says it has. */
async function fileCacheClosure(options: BundleFromFileCacheOptions): Promise<{ paths: string[]; omitted: OmittedPath[] }> {
  const roots = bundleRoots(options);
  const infos = new Map<string, NarInfo>();
  const queue = [...roots];
  while (queue.length > 0) {
    const path = queue.pop() as string;
    if (infos.has(path)) continue;
    const info = await readNarInfo(options.cacheDir, path);
    infos.set(path, info);
    for (const reference of info.references) if (!infos.has(reference)) queue.push(reference);
  }
  const present = new Set(options.since?.storePaths ?? []);
  const closure = [...infos.keys()].sort();
  return {
    paths: closure.filter((path) => !present.has(path)),
    omitted: closure
      .filter((path) => present.has(path))
      .map((path) => {
        const info = infos.get(path) as NarInfo;
        return { storePath: path, narHash: info.narHash, narSize: info.narSize };
      }),
  };
}

/**
 * Wraps a file binary cache that Nix already wrote into a signed bundle
 * (format 1, whose manifest comes first: every hash is known from the
 * narinfos), reading no store. The hosts' closures are followed through the
 * narinfos' references; each narinfo gets the bundle key's signature, and every
 * reader checks each file against the manifest, so a cache file that does not
 * match its narinfo makes an unusable bundle, never a wrong one.
 */
export async function createBundleFromFileCache(options: BundleFromFileCacheOptions): Promise<{ manifest: BundleManifest; bytes: number }> {
  const closure = await fileCacheClosure(options);
  return writeBundle({ cacheDir: options.cacheDir, ...closure, ...bundleIdentity(options) });
}

/**
 * The same signed manifest and narinfos for a file cache, without its NARs
 * (cache-manifest.ts): for a site that gets the cache itself as a tarball by
 * another way, and checks it against this small file before importing it.
 */
export async function signFileCache(options: BundleFromFileCacheOptions): Promise<{ manifest: BundleManifest; bytes: number }> {
  const closure = await fileCacheClosure(options);
  return writeBundle({ cacheDir: options.cacheDir, ...closure, ...bundleIdentity(options), detached: true });
}
