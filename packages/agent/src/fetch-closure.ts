import { statfs } from "node:fs/promises";
import { join } from "node:path";
import { FerryError, toFerryError, type Logger, type Nix } from "@ferry/core";
import type { AgentSettings } from "./settings.js";
import { requireTrustedSignatures } from "./verify-closure-signatures.js";

export interface FetchDeps {
  config: AgentSettings;
  nix: Nix;
  log: Logger;
  sleep: (ms: number) => Promise<void>;
}

const FETCH_ATTEMPTS = 3;
const MIB = 1024 * 1024;

/**
 * Realises a closure from the host's own substituters, under its own trusted
 * keys, after checking it fits on /nix, then checks every path's signature
 * itself (Nix does not for paths already in the store); `rootName` names the
 * GC root that keeps it alive until the transaction decides its fate.
 */
export async function fetchClosure(deps: FetchDeps, path: string, rootName: string): Promise<void> {
  await checkDiskSpace(deps, path);
  const { config, nix, log, sleep } = deps;
  for (let attempt = 1; ; attempt++) {
    try {
      await nix.realise(path, {
        substituters: config.substituters,
        trustedPublicKeys: config.trustedPublicKeys,
        gcRoot: join(config.stateDir, "gcroots", rootName),
        timeoutMs: config.fetchTimeoutMs,
      });
      await requireTrustedSignatures(deps, path);
      return;
    } catch (error) {
      const failure = toFerryError(error, "E_FETCH_FAILED");
      // A bad signature will not fix itself; a missing path may still be uploading.
      if (failure.code === "E_UNSIGNED_PATH" || failure.code === "E_BAD_CONFIG" || attempt >= FETCH_ATTEMPTS) throw failure;
      log.warn({ attempt, code: failure.code, err: failure.message }, "fetch failed; retrying");
      await sleep(2000 * 2 ** (attempt - 1));
    }
  }
}

async function checkDiskSpace(deps: FetchDeps, path: string): Promise<void> {
  const { config, nix, log } = deps;
  const substituter = config.substituters[0] as string;
  let sizes: { path: string; narSize: number }[];
  try {
    sizes = await nix.closureNarSizes(path, substituter);
  } catch (error) {
    // Sizes are advisory; the fetch itself reports a missing or unsigned closure precisely.
    log.warn({ err: (error as Error).message }, "could not read closure sizes; skipping the disk-space check");
    return;
  }
  const missing = new Set(await nix.invalidPaths(sizes.map((entry) => entry.path)));
  const needed = sizes.filter((entry) => missing.has(entry.path)).reduce((sum, entry) => sum + entry.narSize, 0);
  const fs = await statfs("/nix");
  const free = fs.bavail * fs.bsize;
  const reserve = config.diskReserveMiB * MIB;
  if (needed > free - reserve) {
    throw new FerryError(
      "E_NO_SPACE",
      `fetching ${path} needs ${Math.ceil(needed / MIB)} MiB; /nix has ${Math.floor(free / MIB)} MiB free and keeps ${config.diskReserveMiB} MiB in reserve`,
    );
  }
}
