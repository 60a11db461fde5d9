import { FerryError, checkIntentTarget, checkIntentTime, parsePublicKeys, verifyIntent, type DeployIntent, type IntentMode, type PublicKey } from "@ferry/core";
import type { SignedIntent } from "@ferry/protocol/agent-channel";
import type { AgentConfig, UnsignedMode } from "./config.js";
import type { IntentFloor } from "./intent-floor.js";

/** What a controller (or a bundle) asks of this host, as the intent policy sees it. */
export interface IntentRequest {
  storePath: string;
  /** The mode the request names: `default` when it leaves the choice to the host, `dry-activate` for a dry run. */
  mode: IntentMode;
  /** What the host will really do: its own strategy fills in `default`. */
  effectiveMode: UnsignedMode;
  intent: SignedIntent | undefined;
}

export type Admission = { signed: false } | { signed: true; intent: DeployIntent; signer: string };

export type IntentPolicyConfig = Pick<AgentConfig, "hostName" | "intentPublicKeys" | "requireSignedIntents" | "allowedUnsignedModes">;

/**
 * The host's own rules for what a controller may ask of it, applied before a
 * transaction starts (and before a dry run), so that a refusal changes
 * nothing. An intent, when present, must be signed by one of
 * intentPublicKeys, name this host and exactly the path and mode asked for,
 * not be below the highest version this host applied (the floor), and be
 * valid by this host's clock. Without one, requireSignedIntents refuses, and
 * otherwise allowedUnsignedModes decides. A rollback the host decides on its
 * own (a failed trial) never passes through here.
 */
export class IntentGate {
  private readonly trusted: ReadonlyMap<string, PublicKey>;

  constructor(
    private readonly config: IntentPolicyConfig,
    private readonly floor: IntentFloor,
    private readonly now: () => number,
  ) {
    this.trusted = parsePublicKeys(config.intentPublicKeys);
  }

  /** Judges a request without changing anything; throws the refusal's own E_INTENT_* code. */
  check(request: IntentRequest): Admission {
    if (!request.intent) return this.checkUnsigned(request);
    const { intent, signer } = verifyIntent(request.intent, this.trusted);
    checkIntentTarget(intent, { hostName: this.config.hostName, storePath: request.storePath, mode: request.mode });
    const floor = this.floor.read();
    if (floor && (intent.version < floor.version || (intent.version === floor.version && request.intent.intent !== floor.intent))) {
      throw new FerryError(
        "E_INTENT_REPLAYED",
        `the intent's version ${intent.version} is ${intent.version < floor.version ? "below" : "the same as, but not the intent of,"} the version this host applied last (${floor.version}, signed by ${floor.signer})`,
      );
    }
    checkIntentTime(intent, this.now());
    return { signed: true, intent, signer };
  }

  /**
   * Judges an activation and, if it is signed, raises the floor to it before
   * anything is switched: from then on no lower version is taken, whether or
   * not this one ends up confirmed.
   */
  admit(request: IntentRequest): Admission {
    const admission = this.check(request);
    if (admission.signed && request.intent) {
      this.floor.raise({ version: admission.intent.version, intent: request.intent.intent, signer: admission.signer, appliedAtMs: this.now() });
    }
    return admission;
  }

  private checkUnsigned(request: IntentRequest): Admission {
    const what = request.mode === "dry-activate" ? "a dry run" : `${request.storePath} (${request.effectiveMode})`;
    if (this.config.requireSignedIntents) {
      throw new FerryError("E_INTENT_UNSIGNED", `refused ${what}: this host requires a signed intent, and none came with it`);
    }
    if (!this.config.allowedUnsignedModes.includes(request.effectiveMode)) {
      throw new FerryError(
        "E_INTENT_MODE_UNSIGNED",
        `refused ${what}: this host takes ${request.effectiveMode} only with a signed intent (allowed unsigned: ${this.config.allowedUnsignedModes.join(", ") || "none"})`,
      );
    }
    return { signed: false };
  }
}
