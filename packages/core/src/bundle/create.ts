import { mkdtemp, rm, writeFile } from "node:fs/promises";
import type { SignedIntent } from "@ferry/protocol/agent-channel";
import { dirname, join } from "node:path";
import { FerryError } from "../errors.js";
import type { Nix } from "../nix.js";
import { parseStorePath } from "../validate.js";
import { readSignedIntent } from "../intent.js";
import { intentsByHost } from "../intent-file.js";
import type { SigningKey } from "./keys.js";
import type { BundleManifest, OmittedPath } from "./manifest.js";
import type { SiteInventory } from "./inventory.js";
import { writeBundle, type BundleProgress, type BundleWriteIdentity } from "./write.js";
import { writeStreamedBundle } from "./write-streamed.js";
import type { StreamingRunner } from "../runner.js";

/** What every way of making a bundle takes: whose systems, signed by whom, for which site and until when. */
export interface BundleIdentityOptions {
  hosts: Record<string, string>;
  output: string;
  signingKey: SigningKey;
  /** Leave out what this site inventory lists. */
  since?: SiteInventory & { sha256: string };
  /** Defaults to the creation time in milliseconds, and above the inventory's last sequence. */
  sequence?: number;
  /** The site the bundle is for (sites with a name refuse bundles for another). */
  site?: string | null;
  /** When sites and hosts stop accepting the bundle; null for never. */
  expiresAt?: Date | null;
  /** Signed deploy intents for some of the hosts. */
  intents?: readonly SignedIntent[];
  now?: Date;
  /** Hears how far the writing is (not the `nix copy` of a version 1 bundle, which says nothing). */
  onProgress?: BundleProgress;
}

export interface CreateBundleOptions extends BundleIdentityOptions {
  nix: Nix;
  /** Scratch space for the NARs of a version 1 bundle; defaults to a directory beside the output. */
  workDir?: string;
  /**
   * 2 (the default): streamed from the store in one pass, manifest last
   * (write-streamed.ts), read by this Ferry and later. 1: the layout older
   * sites read, made from a scratch `nix copy` file cache.
   */
  format?: 1 | 2;
  /** Streams the NARs of a version 2 bundle (nix-store --dump, zstd). */
  runner?: StreamingRunner;
}

/**
 * Builds a bundle from the local store: the hosts' closures, less what the
 * site already has. Version 2 streams each NAR from the store straight into
 * the archive. Version 1 writes a zstd file binary cache with `nix copy`, then
 * packs it into one archive. Paths left out are announced to `nix copy` as
 * already present (narinfo stubs), so it neither copies nor misses them.
 */
export async function createBundle(options: CreateBundleOptions): Promise<{ manifest: BundleManifest; bytes: number }> {
  const { nix } = options;
  const roots = bundleRoots(options);
  const missing = await nix.invalidPaths(roots);
  if (missing.length > 0) throw new FerryError("E_BAD_STORE_PATH", `not in the local store (build it first): ${missing.join(", ")}`);
  const closure = await nix.closure(roots);
  const present = new Set(options.since?.storePaths ?? []);
  const omittedPaths = closure.filter((path) => present.has(path));
  const included = closure.filter((path) => !present.has(path));
  const identity = bundleIdentity(options);
  if ((options.format ?? 2) === 2) {
    if (!options.runner) throw new FerryError("E_INTERNAL", "a version 2 bundle needs a streaming runner");
    const [includedInfo, omittedInfo] = await Promise.all([nix.pathInfos(included), nix.pathInfos(omittedPaths)]);
    return writeStreamedBundle({
      runner: options.runner,
      paths: includedInfo,
      omitted: omittedInfo.map((info) => ({ storePath: info.path, narHash: info.narHash, narSize: info.narSize })),
      ...identity,
    });
  }
  const workDir = await mkdtemp(join(options.workDir ?? dirname(options.output), ".ferry-bundle-"));
  try {
    const omittedInfo = await nix.pathInfos(omittedPaths);
    for (const info of omittedInfo) {
      const refs = info.references.map((ref) => ref.slice("/nix/store/".length)).join(" ");
      const stub = `StorePath: ${info.path}\nURL: nar/omitted.nar\nCompression: none\nNarHash: ${info.narHash}\nNarSize: ${info.narSize}\nReferences: ${refs}\n`;
      await writeFile(join(workDir, `${parseStorePath(info.path).hash}.narinfo`), stub);
    }
    if (included.length > 0) await nix.copyTo(`file://${workDir}?compression=zstd`, roots);
    const omitted: OmittedPath[] = omittedInfo.map((info) => ({ storePath: info.path, narHash: info.narHash, narSize: info.narSize }));
    return await writeBundle({
      cacheDir: workDir,
      paths: included,
      omitted,
      ...identity,
    });
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

/** The hosts' systems, checked with their intents: the roots of the bundle's closure. */
export function bundleRoots(options: BundleIdentityOptions): string[] {
  const roots = [...new Set(Object.values(options.hosts))];
  if (roots.length === 0) throw new FerryError("E_BAD_ARGUMENT", "the bundle manifest names no host");
  checkBundleIntents(options.intents ?? [], options.hosts);
  return roots;
}

/** The manifest fields every writer takes alike, with the sequence chosen above the site's last one. */
export function bundleIdentity(options: BundleIdentityOptions): BundleWriteIdentity {
  const now = options.now ?? new Date();
  const sequence = options.sequence ?? Math.max(now.getTime(), (options.since?.lastSequence ?? 0) + 1);
  if (options.since && sequence <= options.since.lastSequence) {
    throw new FerryError("E_BAD_ARGUMENT", `sequence ${sequence} is not above the site's last imported bundle (${options.since.lastSequence})`);
  }
  return {
    hosts: options.hosts,
    sequence,
    since: options.since ? { inventorySha256: options.since.sha256, lastSequence: options.since.lastSequence } : null,
    site: options.site ?? null,
    expiresAt: options.expiresAt ?? null,
    intents: options.intents ?? [],
    signingKey: options.signingKey,
    output: options.output,
    now,
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  };
}

/** Each intent names one of the bundle's hosts and exactly its system, in a mode that deploys. */
function checkBundleIntents(intents: readonly SignedIntent[], hosts: Record<string, string>): void {
  intentsByHost(intents);
  for (const signed of intents) {
    const intent = readSignedIntent(signed);
    if (hosts[intent.hostName] !== intent.storePath) {
      throw new FerryError(
        "E_BAD_ARGUMENT",
        `an intent approves ${intent.storePath} for ${intent.hostName}, but the bundle gives that host ${hosts[intent.hostName] ?? "nothing"}`,
      );
    }
    if (intent.mode === "dry-activate") throw new FerryError("E_BAD_ARGUMENT", `the intent for ${intent.hostName} is a dry-activate intent; a bundle deploys`);
  }
}
