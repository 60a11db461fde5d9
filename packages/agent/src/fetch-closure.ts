import { statfs } from "node:fs/promises";
import { join } from "node:path";
import { FerryError, toFerryError, type ErrorCode, type Logger, type Nix } from "@ferry/core";
import { cacheTransport, diagnoseSubstituters } from "./cache-transport.js";
import type { AgentConfig } from "./config.js";

export interface FetchDeps {
  config: AgentConfig;
  nix: Nix;
  log: Logger;
  sleep: (ms: number) => Promise<void>;
}

const FETCH_ATTEMPTS = 3;
const MIB = 1024 * 1024;

/**
 * Realises a closure from the host's own substituters, under its own trusted
 * keys, after checking it fits on /nix; `rootName` names the GC root that
 * keeps it alive until the transaction decides its fate.
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
        timeoutMs: config.fetchTimeout * 1000,
        ...cacheTransport(config),
      });
      return;
    } catch (error) {
      const failure = await diagnosed(config, path, toFerryError(error, "E_FETCH_FAILED"));
      // A bad signature will not fix itself; a missing path may still be uploading.
      if (FINAL_FAILURES.has(failure.code) || attempt >= FETCH_ATTEMPTS) throw failure;
      log.warn({ attempt, code: failure.code, err: failure.message }, "fetch failed; retrying");
      await sleep(2000 * 2 ** (attempt - 1));
    }
  }
}

/** What Nix reports vaguely (a missing path, a refused certificate) may have a precise cause. */
const VAGUE_FAILURES = new Set<ErrorCode>(["E_PATH_NOT_IN_CACHE", "E_FETCH_FAILED", "E_TLS_UNTRUSTED"]);
/** Failures a retry cannot fix: a bad signature, refused credentials, a refused certificate. */
const FINAL_FAILURES = new Set<ErrorCode>(["E_UNSIGNED_PATH", "E_CACHE_AUTH", "E_TLS_UNTRUSTED", "E_TLS_EXPIRED", "E_TLS_NAME_MISMATCH"]);

async function diagnosed(config: AgentConfig, path: string, failure: FerryError): Promise<FerryError> {
  if (!VAGUE_FAILURES.has(failure.code)) return failure;
  const cause = await diagnoseSubstituters(config, path).catch(() => undefined);
  return cause ? new FerryError(cause.code, cause.message, { output: failure.output, cause: failure }) : failure;
}

async function checkDiskSpace(deps: FetchDeps, path: string): Promise<void> {
  const { config, nix, log } = deps;
  const substituter = config.substituters[0] as string;
  let sizes: { path: string; narSize: number }[];
  try {
    sizes = await nix.closureNarSizes(path, substituter, cacheTransport(config));
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
