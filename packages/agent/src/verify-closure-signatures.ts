import { join } from "node:path";
import { FerryError, findUntrustedPath, parsePublicKeys, trustedSigner, type Logger, type Nix, type PublicKey } from "@ferry/core";
import type { AgentSettings } from "./settings.js";
import { readSystemLink } from "./system-links.js";

export interface SignatureCheckDeps {
  config: Pick<AgentSettings, "stateDir" | "substituters" | "trustedPublicKeys">;
  nix: Nix;
  log: Logger;
}

/**
 * Refuses a closure unless every one of its paths carries a signature by one
 * of this host's own trustedPublicKeys over that path's fingerprint. Nix
 * applies require-sigs only to what it substitutes: a path already valid in
 * the store (built on this host by anyone who can add a path, imported, left
 * over from an old generation) would pass unchecked, so the agent checks
 * every path itself, after the fetch and before any switch.
 *
 * The one exception is the exact system that ran before the current one (the
 * agent's own "previous" GC root): returning to it restores what this host
 * already ran and accepted.
 */
export async function requireTrustedSignatures(deps: SignatureCheckDeps, path: string): Promise<void> {
  const { config, nix, log } = deps;
  if (path === readSystemLink(join(config.stateDir, "gcroots", "previous"))) {
    log.info({ storePath: path }, "returning to the previous system: its signatures are not checked again");
    return;
  }
  const trusted = trustedKeys(config);
  let infos = await nix.closureSignatures(path);
  if (findUntrustedPath(infos, trusted)) {
    // A path that was valid here before the fetch kept only the signatures it
    // came with; the host's own caches may hold one by a trusted key. Copied
    // signatures are verified below like any other.
    const lacking = infos.filter((info) => trustedSigner(info, trusted) === undefined).map((info) => info.path);
    for (const substituter of config.substituters) {
      try {
        await nix.copySignatures(lacking, { from: substituter });
      } catch (error) {
        log.warn({ substituter, err: (error as Error).message }, "could not copy signatures from a substituter");
      }
    }
    infos = await nix.closureSignatures(path);
  }
  const untrusted = findUntrustedPath(infos, trusted);
  if (untrusted) {
    throw new FerryError("E_UNSIGNED_PATH", `${untrusted.path} ${untrusted.reason}; ${path} is not switched to`);
  }
  log.debug({ storePath: path, paths: infos.length }, "every path of the closure is signed by a trusted key");
}

function trustedKeys(config: SignatureCheckDeps["config"]): Map<string, PublicKey> {
  try {
    return parsePublicKeys(config.trustedPublicKeys);
  } catch (error) {
    throw new FerryError("E_BAD_CONFIG", `trustedPublicKeys: ${(error as Error).message}`);
  }
}
