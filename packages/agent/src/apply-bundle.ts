import { createReadStream, createWriteStream, mkdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { join, dirname } from "node:path";
import { pipeline } from "node:stream/promises";
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import {
  BundleLedger,
  FerryError,
  Nix,
  ProcessRunner,
  assertHostName,
  describeIntent,
  formatPhase,
  modeFromWire,
  readSignedIntent,
  verifyBundle,
  wireModeOfIntent,
  type BundleManifest,
  type CommandRunner,
  type IntentMode,
  type Logger,
  type Mode,
} from "@ferry/core";
import type { ActivationResult } from "@ferry/protocol/agent-channel";
import { assertChecksRunnable } from "./check-validation.js";
import type { AgentConfig } from "./config.js";
import { compileAgentConfig } from "./settings.js";
import { IntentFloor } from "./intent-floor.js";
import { IntentGate, type IntentRequest } from "./intent-policy.js";
import { StateFile } from "./state-file.js";
import { ActivationTransaction } from "./transaction.js";

export interface ApplyBundleOptions {
  bundleFile: string;
  config: AgentConfig;
  /** Which of the bundle's hosts this machine is; defaults to the configured hostName. */
  hostName?: string;
  log: Logger;
  runner?: CommandRunner;
  now?: () => number;
}

/** What `ferry agent apply-bundle --result FILE` writes, to be carried back out. */
export interface ApplyBundleReport {
  format: "ferry-apply-result";
  version: 1;
  hostName: string;
  bundle: { sequence: number; createdAt: string; manifestSha256: string; signer: string };
  storePath: string;
  success: boolean;
  phase: string;
  errorCode: string;
  errorMessage: string;
  output: string;
  /** Health checks that failed before the switch and still fail: not counted, so they prove nothing. */
  checksFailingBeforeAndAfter: string[];
  previousSystem: string;
  currentSystem: string;
  startedAt: string;
  finishedAt: string;
}

/** Bundle replay ledger of a standalone host, beside its transaction state. */
export const HOST_LEDGER_FILE = "bundles.json";

/**
 * Applies a bundle on a host with no controller. Nothing reaches the store
 * before the whole bundle verified against the host's own trustedPublicKeys
 * (manifest and narinfo signatures, every hash); it is extracted as a file
 * binary cache in the state directory while verifying, then the same
 * activation transaction as under a controller fetches from that cache (Nix
 * checking signatures again, require-sigs), switches, confirms by health
 * checks alone and rolls back on failure.
 */
export async function applyBundle(options: ApplyBundleOptions): Promise<{ report: ApplyBundleReport; result: ActivationResult }> {
  const { log } = options;
  const config = compileAgentConfig(options.config);
  const now = options.now ?? Date.now;
  const startedAt = new Date(now()).toISOString();
  const hostName = assertHostName(options.hostName ?? config.hostName);
  const runner = options.runner ?? new ProcessRunner();
  await assertChecksRunnable(config.healthChecks, runner);
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  const ledger = new BundleLedger(join(config.stateDir, HOST_LEDGER_FILE));
  const workDir = await mkdtemp(join(config.stateDir, "bundle-"));
  try {
    const cacheDir = join(workDir, "cache");
    mkdirSync(join(cacheDir, "nar"), { recursive: true });
    const verified = await verifyBundle(createReadStream(options.bundleFile, { highWaterMark: 1 << 20 }), {
      trustedKeys: config.trustedPublicKeys,
      // Unverified until verifyBundle resolves; nothing reads this directory before then.
      sink: async (name, _size, body) => {
        const target = join(cacheDir, name);
        if (dirname(target) !== cacheDir && dirname(target) !== join(cacheDir, "nar")) throw new FerryError("E_BUNDLE_TAMPERED", `bad entry name ${name}`);
        await pipeline(Readable.from(body), createWriteStream(target, { mode: 0o644 }));
      },
    });
    const { manifest } = verified;
    const storePath = manifest.hosts[hostName];
    if (!storePath) {
      throw new FerryError(
        "E_BUNDLE_HOST_MISSING",
        `bundle ${manifest.sequence} has no system for ${hostName} (it has: ${Object.keys(manifest.hosts).join(", ")})`,
      );
    }
    ledger.assertAcceptable(
      manifest,
      {
        ...(config.bundleSiteName === undefined ? {} : { siteName: config.bundleSiteName }),
        ...(config.bundleMinSequence === undefined ? {} : { minSequence: config.bundleMinSequence }),
      },
      now(),
    );
    // The host's intent policy, as under a controller: judged before anything changes, the floor raised just before the switch.
    const gate = new IntentGate({ ...config, hostName }, new IntentFloor(config.stateDir), now);
    const { request, strategy } = bundleIntentRequest(manifest, hostName, storePath, config.strategy);
    gate.check(request);
    log.info({ sequence: manifest.sequence, signer: verified.signer, storePath, paths: manifest.paths.length }, "bundle verified");

    const state = new StateFile(config.stateDir, log);
    const nix = new Nix(runner);
    const makeTransaction = (substituters: string[]): ActivationTransaction =>
      new ActivationTransaction({
        config: { ...config, substituters },
        nix,
        runner,
        state,
        log,
        now,
        sleep: (ms) => sleep(ms),
        progress: (serial, phase, message) => log.info({ serial, phase: formatPhase(phase), message }, "progress"),
        // No controller: confirmation rests on the health checks alone.
        heartbeat: undefined,
      });
    if (state.state.transaction) {
      log.warn({ phase: state.state.transaction.phase }, "finishing an interrupted activation before applying the bundle");
      await makeTransaction(config.substituters).resume();
    }
    const admission = gate.admit(request);
    log.info({ storePath, strategy, intent: admission.signed ? describeIntent(admission.intent, admission.signer) : "unsigned" }, "applying the bundle");
    ledger.record({
      sequence: manifest.sequence,
      manifestSha256: verified.manifestSha256,
      createdAt: manifest.createdAt,
      importedAtMs: now(),
      signer: verified.signer,
      hosts: { [hostName]: storePath },
      ...(manifest.site === null ? {} : { site: manifest.site }),
    });
    const previousSystem = makeTransaction([]).currentSystem();
    const result = await makeTransaction([`file://${cacheDir}`]).run({
      // The serial belongs to the controller's numbering; a bundle does not advance it.
      serial: state.state.appliedSerial,
      storePath,
      deploymentId: `bundle-${manifest.sequence}`,
      strategy,
    });
    const report: ApplyBundleReport = {
      format: "ferry-apply-result",
      version: 1,
      hostName,
      bundle: { sequence: manifest.sequence, createdAt: manifest.createdAt, manifestSha256: verified.manifestSha256, signer: verified.signer },
      storePath,
      success: result.success,
      phase: formatPhase(result.phase),
      errorCode: result.errorCode,
      errorMessage: result.errorMessage,
      output: result.output,
      checksFailingBeforeAndAfter: result.checksFailingBeforeAndAfter,
      previousSystem,
      currentSystem: result.currentSystem,
      startedAt,
      finishedAt: new Date(now()).toISOString(),
    };
    return { report, result };
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

/**
 * A bundle asks its host for its system in the mode its signed intent names
 * (the host's own strategy when that is `default`, or without an intent).
 */
function bundleIntentRequest(manifest: BundleManifest, hostName: string, storePath: string, configured: Mode): { request: IntentRequest; strategy: Mode } {
  const intent = manifest.intents.find((signed) => readSignedIntent(signed).hostName === hostName);
  const mode: IntentMode = intent ? readSignedIntent(intent).mode : "default";
  const strategy = modeFromWire(wireModeOfIntent(mode)) ?? configured;
  return { request: { storePath, mode, effectiveMode: strategy, intent }, strategy };
}
