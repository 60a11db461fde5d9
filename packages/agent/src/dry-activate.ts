import { join } from "node:path";
import { assertStorePath, toFerryError, type Logger, type Nix } from "@ferry/core";
import type { DryActivateCommand, DryActivateOutcome } from "@ferry/protocol";
import type { AgentConfig } from "./config.js";
import type { IntentGate } from "./intent-policy.js";
import { requireTrustedSignatures } from "./verify-closure-signatures.js";

/**
 * Realises the system under the host's own trust settings, then asks it what
 * a switch would do. Nothing is activated and no state is written; the intent
 * policy is checked first (a dry run runs the system's own activation script
 * in dry mode, so a host that requires signed intents requires one here too).
 */
export async function dryActivate(command: DryActivateCommand, config: AgentConfig, nix: Nix, log: Logger, intents: IntentGate): Promise<DryActivateOutcome> {
  const answer = { requestId: command.requestId, hostName: config.hostName };
  try {
    const path = assertStorePath(command.storePath);
    intents.check({ storePath: path, mode: "dry-activate", effectiveMode: "dry-activate", intent: command.intent });
    await nix.realise(path, {
      substituters: config.substituters,
      trustedPublicKeys: config.trustedPublicKeys,
      gcRoot: join(config.stateDir, "gcroots", "dry-activate"),
      timeoutMs: config.fetchTimeout * 1000,
    });
    await requireTrustedSignatures({ config, nix, log }, path);
    const output = await nix.switchToConfiguration(path, "dry-activate", config.activationTimeout * 1000);
    log.info({ storePath: path }, "dry-activate done");
    return { ...answer, success: true, errorCode: "", errorMessage: "", output };
  } catch (error) {
    const failure = toFerryError(error, "E_ACTIVATION_FAILED");
    log.warn({ code: failure.code, err: failure.message }, "dry-activate failed");
    return { ...answer, success: false, errorCode: failure.code, errorMessage: failure.message, output: failure.output };
  }
}
