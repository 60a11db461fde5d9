import type { SignedIntent } from "@ferry/protocol";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { FerryError } from "../errors.js";
import { parseNarInfo, type NarInfo } from "../narinfo.js";
import { parseStorePath } from "../validate.js";
import type { SigningKey } from "./keys.js";
import type { BundleManifest } from "./manifest.js";
import type { SiteInventory } from "./inventory.js";
import { writeBundle } from "./write.js";
import { checkBundleIntents } from "./create.js";

export interface BundleFromFileCacheOptions {
  /** A Nix file binary cache, as `nix copy --to file://DIR` writes it (any compression Nix writes). */
  cacheDir: string;
  hosts: Record<string, string>;
  output: string;
  signingKey: SigningKey;
  since?: SiteInventory & { sha256: string };
  sequence?: number;
  site?: string | null;
  expiresAt?: Date | null;
  /** Signed deploy intents for some of the hosts. */
  intents?: readonly SignedIntent[];
  now?: Date;
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

/**
 * Wraps a file binary cache that Nix already wrote into a signed bundle
 * (format 1, whose manifest comes first: every hash is known from the
 * narinfos), reading no store. The hosts' closures are followed through the
 * narinfos' references; each narinfo gets the bundle key's signature, and every
 * reader checks each file against the manifest, so a cache file that does not
 * match its narinfo makes an unusable bundle, never a wrong one.
 */
export async function createBundleFromFileCache(options: BundleFromFileCacheOptions): Promise<{ manifest: BundleManifest; bytes: number }> {
  const now = options.now ?? new Date();
  const roots = [...new Set(Object.values(options.hosts))];
  if (roots.length === 0) throw new FerryError("E_BAD_ARGUMENT", "the bundle manifest names no host");
  checkBundleIntents(options.intents ?? [], options.hosts);
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
  const sequence = options.sequence ?? Math.max(now.getTime(), (options.since?.lastSequence ?? 0) + 1);
  if (options.since && sequence <= options.since.lastSequence) {
    throw new FerryError("E_BAD_ARGUMENT", `sequence ${sequence} is not above the site's last imported bundle (${options.since.lastSequence})`);
  }
  return writeBundle({
    cacheDir: options.cacheDir,
    paths: closure.filter((path) => !present.has(path)),
    omitted: closure
      .filter((path) => present.has(path))
      .map((path) => {
        const info = infos.get(path) as NarInfo;
        return { storePath: path, narHash: info.narHash, narSize: info.narSize };
      }),
    hosts: options.hosts,
    sequence,
    since: options.since ? { inventorySha256: options.since.sha256, lastSequence: options.since.lastSequence } : null,
    site: options.site ?? null,
    expiresAt: options.expiresAt ?? null,
    intents: options.intents ?? [],
    signingKey: options.signingKey,
    output: options.output,
    now,
  });
}
