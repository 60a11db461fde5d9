import { join } from "node:path";
import { assertStorePath, FerryError, toFerryError, type Logger, type Nix } from "@ferry/core";
import type { DryActivateCommand, DryActivateOutcome } from "@ferry/protocol/agent-channel";
import { cacheTransport } from "./cache-transport.js";
import type { AgentSettings } from "./settings.js";
import { describeHolder, type SwitchLock } from "./switch-lock.js";
import type { IntentGate } from "./intent-policy.js";
import { requireTrustedSignatures } from "./verify-closure-signatures.js";

/**
 * Realises the system under the host's own trust settings, then asks it what
 * a switch would do. Nothing is activated and no state is written. The
 * switch script runs under the switch lock like any other: refused at once
 * while an activation of this agent or a switch outside it holds the lock
 * (its answer would describe a system about to change, and an operator is
 * waiting for it), while an activation that arrives meanwhile waits for it.
 */
export async function dryActivate(
  command: DryActivateCommand,
  config: AgentSettings,
  nix: Nix,
  lock: SwitchLock,
  log: Logger,
  intents: IntentGate,
): Promise<DryActivateOutcome> {
  const answer = { requestId: command.requestId, hostName: config.hostName };
  try {
    const path = assertStorePath(command.storePath);
    // A dry run runs the system's own activation script in dry mode: a host that requires signed intents requires one here too.
    intents.check({ storePath: path, mode: "dry-activate", effectiveMode: "dry-activate", intent: command.intent });
    await nix.realise(path, {
      substituters: config.substituters,
      trustedPublicKeys: config.trustedPublicKeys,
      gcRoot: join(config.stateDir, "gcroots", "dry-activate"),
      timeoutMs: config.fetchTimeoutMs,
      ...cacheTransport(config),
    });
    await requireTrustedSignatures({ config, nix, log }, path);
    const release = lock.tryAcquire("running a dry-activate");
    if (!release) throw new FerryError("E_SWITCH_LOCKED", `not run: this agent is ${lock.heldFor ?? "switching"}; ask again once it has finished`);
    let output: string;
    try {
      const holder = lock.outsideHolder();
      if (holder) throw new FerryError("E_SWITCH_LOCKED", `not run: ${describeHolder(lock.file, holder)}`);
      output = await nix.switchToConfiguration(path, "dry-activate", config.activationTimeoutMs);
    } finally {
      release();
    }
    log.info({ storePath: path }, "dry-activate done");
    return { ...answer, success: true, errorCode: "", errorMessage: "", output };
  } catch (error) {
    const failure = toFerryError(error, "E_ACTIVATION_FAILED");
    log.warn({ code: failure.code, err: failure.message }, "dry-activate failed");
    return { ...answer, success: false, errorCode: failure.code, errorMessage: failure.message, output: failure.output };
  }
}
