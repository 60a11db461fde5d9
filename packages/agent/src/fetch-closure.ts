import { statfs } from "node:fs/promises";
import { join } from "node:path";
import {
  FerryError,
  findUntrustedPath,
  parsePublicKeys,
  toFerryError,
  type ErrorCode,
  type Logger,
  type Nix,
  type PublicKey,
  type SignedPathInfo,
} from "@ferry/core";
import { cacheTransport, diagnoseSubstituters } from "./cache-transport.js";
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
 * Returns the NAR bytes it had to fetch when the signed sizes told them.
 */
export async function fetchClosure(deps: FetchDeps, path: string, rootName: string): Promise<number | undefined> {
  const needed = await checkDiskSpace(deps, path);
  const { config, nix, log, sleep } = deps;
  for (let attempt = 1; ; attempt++) {
    const watchdog = watchFreeSpace(deps, path);
    try {
      await nix.realise(path, {
        substituters: config.substituters,
        trustedPublicKeys: config.trustedPublicKeys,
        gcRoot: join(config.stateDir, "gcroots", rootName),
        timeoutMs: config.fetchTimeoutMs,
        signal: watchdog.signal,
        ...cacheTransport(config),
      });
      await requireTrustedSignatures(deps, path);
      return needed;
    } catch (error) {
      const failure = await diagnosed(config, path, toFerryError(error, "E_FETCH_FAILED"));
      // A bad signature will not fix itself, nor will a full disk or refused credentials; a missing path may still be uploading.
      if (FINAL_FAILURES.has(failure.code) || attempt >= FETCH_ATTEMPTS) throw failure;
      log.warn({ attempt, code: failure.code, err: failure.message }, "fetch failed; retrying");
      await sleep(2000 * 2 ** (attempt - 1));
    } finally {
      watchdog.stop();
    }
  }
}

/** What Nix reports vaguely (a missing path, a refused certificate) may have a precise cause. */
const VAGUE_FAILURES = new Set<ErrorCode>(["E_PATH_NOT_IN_CACHE", "E_FETCH_FAILED", "E_TLS_UNTRUSTED"]);
/** Failures a retry cannot fix: a bad signature, a full disk, refused credentials, a refused certificate. */
const FINAL_FAILURES = new Set<ErrorCode>([
  "E_UNSIGNED_PATH",
  "E_BAD_CONFIG",
  "E_NO_SPACE",
  "E_CACHE_AUTH",
  "E_TLS_UNTRUSTED",
  "E_TLS_EXPIRED",
  "E_TLS_NAME_MISMATCH",
]);
const WATCHDOG_INTERVAL_MS = 1000;

async function diagnosed(config: AgentSettings, path: string, failure: FerryError): Promise<FerryError> {
  if (!VAGUE_FAILURES.has(failure.code)) return failure;
  const cause = await diagnoseSubstituters(config, path).catch(() => undefined);
  return cause ? new FerryError(cause.code, cause.message, { output: failure.output, cause: failure }) : failure;
}

/**
 * While a fetch runs, /nix must keep half the reserve free: the sizes checked
 * beforehand are the closure's, but anything else may fill the disk meanwhile.
 * Crossing the line kills the fetch with E_NO_SPACE instead of filling /nix.
 */
function watchFreeSpace(deps: FetchDeps, path: string): { signal: AbortSignal; stop(): void } {
  const controller = new AbortController();
  const floor = (deps.config.diskReserveMiB * MIB) / 2;
  const timer = setInterval(() => {
    void freeBytes().then((free) => {
      if (free >= floor || controller.signal.aborted) return;
      controller.abort(
        new FerryError(
          "E_NO_SPACE",
          `stopped fetching ${path}: /nix fell to ${Math.floor(free / MIB)} MiB free, below half the ${deps.config.diskReserveMiB} MiB reserve`,
        ),
      );
    });
  }, WATCHDOG_INTERVAL_MS);
  timer.unref();
  return { signal: controller.signal, stop: () => clearInterval(timer) };
}

async function freeBytes(): Promise<number> {
  const fs = await statfs("/nix");
  return fs.bavail * fs.bsize;
}

/**
 * The closure must fit on /nix with the reserve left over. The sizes come from
 * the host's first substituter, which the host does not trust: a size counts
 * only when a trusted key signed it (a NAR size is part of what a Nix
 * signature covers, and Nix checks it when it substitutes), so a cache cannot
 * understate a closure to fill the disk.
 */
async function checkDiskSpace(deps: FetchDeps, path: string): Promise<number | undefined> {
  const { config, nix, log } = deps;
  const substituter = config.substituters[0] as string;
  let infos: SignedPathInfo[];
  try {
    infos = await nix.closureInfosFrom(path, substituter, cacheTransport(config));
  } catch (error) {
    // The fetch itself reports a missing closure precisely, and the watchdog guards the disk.
    log.warn({ err: (error as Error).message }, "could not read closure sizes; relying on the disk-space watchdog");
    return undefined;
  }
  const missing = new Set(await nix.invalidPaths(infos.map((entry) => entry.path)));
  const toFetch = infos.filter((entry) => missing.has(entry.path));
  const untrusted = findUntrustedPath(toFetch, trustedKeysOf(config));
  if (untrusted) {
    throw new FerryError("E_UNSIGNED_PATH", `${untrusted.path}: ${untrusted.reason} (in ${substituter}); its size and contents cannot be trusted`);
  }
  const needed = toFetch.reduce((sum, entry) => sum + entry.narSize, 0);
  const free = await freeBytes();
  const reserve = config.diskReserveMiB * MIB;
  if (needed > free - reserve) {
    throw new FerryError(
      "E_NO_SPACE",
      `fetching ${path} needs ${Math.ceil(needed / MIB)} MiB; /nix has ${Math.floor(free / MIB)} MiB free and keeps ${config.diskReserveMiB} MiB in reserve`,
    );
  }
  return needed;
}

function trustedKeysOf(config: AgentSettings): Map<string, PublicKey> {
  try {
    return parsePublicKeys(config.trustedPublicKeys);
  } catch (error) {
    throw new FerryError("E_BAD_CONFIG", `trustedPublicKeys: ${(error as Error).message}`);
  }
}
