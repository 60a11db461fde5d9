import { join } from "node:path";
import { assertStorePath, toFerryError, type Logger, type Nix } from "@ferry/core";
import type { DryActivateCommand, DryActivateOutcome } from "@ferry/protocol";
import { cacheTransport } from "./cache-transport.js";
import type { AgentConfig } from "./config.js";

/**
 * Realises the system under the host's own trust settings, then asks it what
 * a switch would do. Nothing is activated and no state is written.
 */
export async function dryActivate(command: DryActivateCommand, config: AgentConfig, nix: Nix, log: Logger): Promise<DryActivateOutcome> {
  const answer = { requestId: command.requestId, hostName: config.hostName };
  try {
    const path = assertStorePath(command.storePath);
    await nix.realise(path, {
      substituters: config.substituters,
      trustedPublicKeys: config.trustedPublicKeys,
      gcRoot: join(config.stateDir, "gcroots", "dry-activate"),
      timeoutMs: config.fetchTimeout * 1000,
      ...cacheTransport(config),
    });
    const output = await nix.switchToConfiguration(path, "dry-activate", config.activationTimeout * 1000);
    log.info({ storePath: path }, "dry-activate done");
    return { ...answer, success: true, errorCode: "", errorMessage: "", output };
  } catch (error) {
    const failure = toFerryError(error, "E_ACTIVATION_FAILED");
    log.warn({ code: failure.code, err: failure.message }, "dry-activate failed");
    return { ...answer, success: false, errorCode: failure.code, errorMessage: failure.message, output: failure.output };
  }
}
