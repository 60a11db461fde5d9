// The host's intent policy (packages/agent/src/intent-policy.ts) as a
// controller meets it: DesiredSystem frames through the reconciler, on a fake
// host whose Nix records every command. Each refusal has its own code and
// leaves the floor, the profile, /run/current-system and the transaction
// state as they were, with not one fetch or switch; a legitimate deployment
// raises the floor, and the host's own rollback after a failed health check
// is untouched by the policy.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ActivationMode, HostPhase, type ActivationResult, type DesiredSystem, type SignedIntent } from "@ferry/protocol";
import { Nix, createIntent, signIntent, silentLogger, type IntentMode } from "@ferry/core";
import { parseAgentConfig } from "../src/config.js";
import type { ControllerLink } from "../src/controller-link.js";
import { dryActivate } from "../src/dry-activate.js";
import { INTENT_FLOOR_FILE, IntentFloor } from "../src/intent-floor.js";
import { IntentGate } from "../src/intent-policy.js";
import { Reconciler } from "../src/reconciler.js";
import { StateFile } from "../src/state-file.js";
import { ActivationTransaction } from "../src/transaction.js";
import { FakeHostRunner, SWITCH, profileTarget, setLink, setProfileLink } from "./fake-host.js";
import { makeKey, type TestKey } from "./signed-paths.js";
import { compileAgentConfig } from "../src/settings.js";
import { SwitchLock } from "../src/switch-lock.js";

const PREV = "/nix/store/1zy01hjzwvvia6h9dq5xar88v77fgh9x-nixos-system-web1-old";
const NEXT = "/nix/store/pz5wv3mkbf4bwihvsz8yqydfwb9bfhy5-nixos-system-web1-new";
const OTHER = "/nix/store/a1b2c3d4f5g6h7i8j9k0lmnpqrsvwxyz-nixos-system-web1-other";
const BAD = "/nix/store/0000000000000000000000000000000a-nixos-system-web1-unhealthy";
const CACHE_KEY = makeKey("ferry-cache-1");
const INTENT_KEY = makeKey("ferry-ci-1");
const INTRUDER = makeKey("ferry-ci-1");
const NOW = 1_700_000_000_000;
const HOUR = 3_600_000;

const root = mkdtempSync(join(tmpdir(), "ferry-intents-"));
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;

function sign(
  fields: { host?: string; path?: string; mode?: IntentMode; version?: number; issuedAtMs?: number; expiresInMs?: number } = {},
  key: TestKey = INTENT_KEY,
): SignedIntent {
  const intent = createIntent({
    hostName: fields.host ?? "web1",
    storePath: fields.path ?? NEXT,
    mode: fields.mode ?? "trial",
    nowMs: fields.issuedAtMs ?? NOW - 60_000,
    expiresInMs: fields.expiresInMs ?? HOUR,
    ...(fields.version === undefined ? {} : { version: fields.version }),
  });
  return signIntent(intent, [key.secret]);
}

function host(settings: Record<string, unknown> = {}) {
  const dir = join(root, `host-${++counter}`);
  const stateDir = join(dir, "state");
  const profile = join(dir, "profiles", "system");
  const currentLink = join(dir, "run", "current-system");
  mkdirSync(stateDir, { recursive: true });
  setLink(currentLink, PREV);
  setProfileLink(profile, PREV);
  // The fetch path reads the agent token for the cache's netrc.
  writeFileSync(join(dir, "token"), "intent-test-token\n", { mode: 0o600 });
  const config = compileAgentConfig(
    parseAgentConfig({
      controllerUrl: "ws://127.0.0.1:1/agent",
      hostName: "web1",
      tokenFile: join(dir, "token"),
      substituters: ["http://127.0.0.1:1/cache"],
      trustedPublicKeys: [CACHE_KEY.publicKey],
      intentPublicKeys: [INTENT_KEY.publicKey],
      requireSignedIntents: true,
      stateDir,
      profile,
      currentSystemLink: currentLink,
      diskReserveMiB: 0,
      confirmTimeout: 10,
      ...settings,
    }),
  );
  const log = silentLogger();
  const runner = new FakeHostRunner({ profile, currentLink, key: CACHE_KEY });
  const clock = { now: NOW };
  const state = new StateFile(stateDir, log);
  const nix = new Nix(runner);
  const tx = new ActivationTransaction({
    config,
    nix,
    runner,
    state,
    log,
    now: () => clock.now,
    sleep: async (ms) => {
      clock.now += Math.max(ms, 1);
    },
    progress: () => undefined,
    heartbeat: undefined,
  });
  const results: ActivationResult[] = [];
  const link = {
    send(body: { $case: string; value: unknown }) {
      if (body.$case === "result") results.push(body.value as ActivationResult);
    },
  } as unknown as ControllerLink;
  const gate = new IntentGate(config, new IntentFloor(stateDir), () => clock.now);
  const reconciler = new Reconciler(tx, state, link, config, log, gate);
  let serial = 0;
  const floorFile = join(stateDir, INTENT_FLOOR_FILE);
  return {
    config,
    runner,
    clock,
    gate,
    nix,
    currentLink,
    floorFile,
    /** Sends one DesiredSystem frame, as the controller would, and returns the host's result. */
    async deliver(frame: Partial<DesiredSystem>): Promise<ActivationResult> {
      reconciler.onDesired({
        hostName: "web1",
        storePath: NEXT,
        serial: ++serial,
        deploymentId: `d${serial}`,
        rolloutId: "",
        mode: ActivationMode.ACTIVATION_MODE_TRIAL,
        activate: true,
        intent: undefined,
        ...frame,
      });
      await reconciler.idle();
      const result = results.at(-1);
      assert.ok(result && result.serial === serial, "the host reported on this frame");
      return result;
    },
    /** Everything a refusal must leave as it was. */
    snapshot() {
      let floor: string | null = null;
      try {
        floor = readFileSync(floorFile, "utf8");
      } catch {
        // No floor yet.
      }
      return {
        floor,
        profile: profileTarget(profile),
        current: readlinkSync(currentLink),
        transaction: state.state.transaction,
        changes: runner.changes.length,
      };
    },
  };
}

type Host = ReturnType<typeof host>;

async function assertRefused(h: Host, frame: Partial<DesiredSystem>, code: string, message?: RegExp): Promise<void> {
  const before = h.snapshot();
  const result = await h.deliver(frame);
  assert.equal(result.errorCode, code, result.errorMessage);
  if (message) assert.match(result.errorMessage, message);
  assert.equal(result.success, false);
  assert.equal(result.phase, HostPhase.HOST_PHASE_FAILED);
  assert.deepEqual(h.snapshot(), before, "a refusal changes nothing on the host");
}

/** A host that applied a signed intent for NEXT (version NOW - 10 s): its floor. */
async function hostWithFloor(settings: Record<string, unknown> = {}): Promise<Host> {
  const h = host(settings);
  const applied = await h.deliver({ intent: sign({ version: NOW - 10_000 }) });
  assert.equal(applied.success, true, applied.errorMessage);
  assert.equal(readlinkSync(h.currentLink), NEXT);
  return h;
}

describe("intent policy: each refusal has its own code and changes nothing", () => {
  test("a replayed older intent (version below the floor): E_INTENT_REPLAYED", async () => {
    const h = await hostWithFloor();
    // Signed for PREV earlier, still unexpired: exactly what a compromised controller would keep and replay.
    await assertRefused(h, { storePath: PREV, intent: sign({ path: PREV, version: NOW - 20_000 }) }, "E_INTENT_REPLAYED", /below/);
  });

  test("another intent with the version the host applied last: E_INTENT_REPLAYED", async () => {
    const h = await hostWithFloor();
    await assertRefused(h, { storePath: OTHER, intent: sign({ path: OTHER, version: NOW - 10_000 }) }, "E_INTENT_REPLAYED", /same as/);
  });

  test("an intent for another host: E_INTENT_WRONG_HOST", async () => {
    const h = host();
    await assertRefused(h, { intent: sign({ host: "web2" }) }, "E_INTENT_WRONG_HOST", /signed for web2, not web1/);
  });

  test("an expired intent: E_INTENT_EXPIRED", async () => {
    const h = host();
    await assertRefused(h, { intent: sign({ issuedAtMs: NOW - 2 * HOUR, expiresInMs: HOUR }) }, "E_INTENT_EXPIRED", /expired/);
  });

  test("an intent issued in the future: E_INTENT_EXPIRED", async () => {
    const h = host();
    await assertRefused(h, { intent: sign({ issuedAtMs: NOW + HOUR }) }, "E_INTENT_EXPIRED", /future/);
  });

  test("a desired path other than the signed one: E_INTENT_PATH_MISMATCH", async () => {
    const h = host();
    await assertRefused(h, { storePath: OTHER, intent: sign({ path: NEXT }) }, "E_INTENT_PATH_MISMATCH");
  });

  test("intent text altered after signing: E_INTENT_SIGNATURE", async () => {
    const h = host();
    const signed = sign({ path: NEXT });
    await assertRefused(h, { storePath: OTHER, intent: { ...signed, intent: signed.intent.replace(NEXT, OTHER) } }, "E_INTENT_SIGNATURE");
  });

  test("a mode other than the signed one (boot, which skips the trial): E_INTENT_MODE_MISMATCH", async () => {
    const h = host();
    await assertRefused(h, { mode: ActivationMode.ACTIVATION_MODE_BOOT, intent: sign({ mode: "trial" }) }, "E_INTENT_MODE_MISMATCH", /mode trial, not boot/);
    // "No mode" (the host's strategy) is a mode of its own too.
    await assertRefused(h, { mode: ActivationMode.ACTIVATION_MODE_UNSPECIFIED, intent: sign({ mode: "trial" }) }, "E_INTENT_MODE_MISMATCH");
  });

  test("unsigned while the host requires signed intents: E_INTENT_UNSIGNED", async () => {
    const h = host();
    await assertRefused(h, { intent: undefined }, "E_INTENT_UNSIGNED");
  });

  test("signed by a key the host does not trust (even one of the same name): E_INTENT_SIGNATURE", async () => {
    const h = host();
    await assertRefused(h, { intent: sign({}, INTRUDER) }, "E_INTENT_SIGNATURE", /no valid signature by a trusted key/);
    await assertRefused(h, { intent: sign({}, makeKey("someone-else")) }, "E_INTENT_SIGNATURE");
  });

  test("a mode the host does not take unsigned: E_INTENT_MODE_UNSIGNED", async () => {
    const h = host({ requireSignedIntents: false, allowedUnsignedModes: ["trial", "test", "dry-activate"] });
    await assertRefused(h, { mode: ActivationMode.ACTIVATION_MODE_BOOT }, "E_INTENT_MODE_UNSIGNED", /boot only with a signed intent/);
    // The host's own strategy decides what "no mode" means, and that is what the list is checked against.
    const bootHost = host({ requireSignedIntents: false, allowedUnsignedModes: ["trial"], strategy: "boot" });
    await assertRefused(bootHost, { mode: ActivationMode.ACTIVATION_MODE_UNSPECIFIED }, "E_INTENT_MODE_UNSIGNED");
    // An allowed mode goes through unsigned, and a signed boot is taken.
    assert.equal((await h.deliver({ mode: ActivationMode.ACTIVATION_MODE_TRIAL })).success, true);
    const signedBoot = await h.deliver({ storePath: OTHER, mode: ActivationMode.ACTIVATION_MODE_BOOT, intent: sign({ path: OTHER, mode: "boot" }) });
    assert.equal(signedBoot.success, true, signedBoot.errorMessage);
    assert.equal(signedBoot.phase, HostPhase.HOST_PHASE_BOOT_PENDING);
  });

  test("a version implausibly far ahead: E_INTENT_VERSION", async () => {
    const h = host();
    await assertRefused(h, { intent: sign({ version: NOW + 365 * 24 * HOUR }) }, "E_INTENT_VERSION");
  });

  test("intent text that is not canonical: E_INTENT_MALFORMED", async () => {
    const h = host();
    const signed = sign();
    await assertRefused(h, { intent: { ...signed, intent: `${signed.intent}\n` } }, "E_INTENT_MALFORMED");
    await assertRefused(h, { intent: { intent: "", signatures: [] } }, "E_INTENT_MALFORMED");
  });

  test("an unreadable floor file refuses signed deployments (E_INTENT_STATE) and is left for an operator", async () => {
    const h = await hostWithFloor();
    writeFileSync(h.floorFile, "{ not json");
    await assertRefused(h, { storePath: OTHER, intent: sign({ path: OTHER }) }, "E_INTENT_STATE");
    assert.equal(readFileSync(h.floorFile, "utf8"), "{ not json");
  });

  test("without requireSignedIntents and with the default allow-list, unsigned deployments go through as before", async () => {
    const h = host({ requireSignedIntents: false, intentPublicKeys: [] });
    for (const mode of [ActivationMode.ACTIVATION_MODE_UNSPECIFIED, ActivationMode.ACTIVATION_MODE_BOOT]) {
      const result = await h.deliver({ storePath: mode === ActivationMode.ACTIVATION_MODE_BOOT ? OTHER : NEXT, mode });
      assert.equal(result.success, true, result.errorMessage);
    }
    assert.equal(h.snapshot().floor, null);
  });
});

describe("intent policy: what it lets through", () => {
  test("a signed deployment raises the floor before the switch, to the intent's version and text", async () => {
    const h = host();
    const intent = sign({ version: NOW - 5000 });
    const result = await h.deliver({ intent });
    assert.equal(result.success, true, result.errorMessage);
    const floor = JSON.parse(readFileSync(h.floorFile, "utf8")) as { floor: { version: number; intent: string; signer: string } };
    assert.deepEqual([floor.floor.version, floor.floor.intent, floor.floor.signer], [NOW - 5000, intent.intent, "ferry-ci-1"]);
  });

  test("the same intent delivered again (a new serial from a rebuilt controller) is no replay", async () => {
    const h = host();
    const intent = sign({ version: NOW - 5000 });
    assert.equal((await h.deliver({ intent })).success, true);
    const again = await h.deliver({ intent });
    assert.equal(again.success, true, again.errorMessage);
    assert.equal(again.phase, HostPhase.HOST_PHASE_ACTIVE);
  });

  test("a failed health check still rolls back to the exact previous system; the floor stays, and a newer intent deploys", async () => {
    const health = { type: "command", argv: ["/run/health-check"], timeout: 1 };
    const h = host({ healthChecks: [health] });
    h.runner.script = (argv) => (argv[0] === "/run/health-check" && readlinkSync(h.currentLink) === BAD ? { exitCode: 1, stdout: "unhealthy" } : undefined);
    assert.equal((await h.deliver({ intent: sign({ version: NOW - 30_000 }) })).success, true);

    const failed = await h.deliver({ storePath: BAD, intent: sign({ path: BAD, version: NOW - 20_000 }) });
    assert.equal(failed.errorCode, "E_HEALTH_CHECK_FAILED");
    assert.equal(failed.phase, HostPhase.HOST_PHASE_ROLLED_BACK);
    // The host decided the rollback itself: it needed no intent for NEXT, and it ran.
    assert.equal(readlinkSync(h.currentLink), NEXT);
    assert.equal(h.snapshot().profile, NEXT);
    assert.ok(h.runner.calls.some((argv) => argv[0] === `${NEXT}${SWITCH}` && argv[1] === "switch"));
    const floor = JSON.parse(readFileSync(h.floorFile, "utf8")) as { floor: { version: number } };
    assert.equal(floor.floor.version, NOW - 20_000);

    const next = await h.deliver({ storePath: OTHER, intent: sign({ path: OTHER, version: NOW - 10_000 }) });
    assert.equal(next.success, true, next.errorMessage);
    assert.equal(readlinkSync(h.currentLink), OTHER);
  });

  test("a prefetch needs no intent: it fetches, switches nothing, leaves the floor", async () => {
    const h = host();
    const result = await h.deliver({ activate: false });
    assert.equal(result.success, true, result.errorMessage);
    assert.equal(result.phase, HostPhase.HOST_PHASE_FETCHED);
    assert.ok(h.runner.changes.every(([program]) => program === "nix-store"));
    assert.equal(h.snapshot().floor, null);
  });
});

describe("intent policy: dry runs", () => {
  const command = (intent?: SignedIntent) => ({ requestId: "r1", storePath: NEXT, intent });

  test("unsigned, on a host that requires intents: E_INTENT_UNSIGNED, nothing fetched or run", async () => {
    const h = host();
    const outcome = await dryActivate(command(), h.config, h.nix, new SwitchLock(h.config.switchLockFile), silentLogger(), h.gate);
    assert.equal(outcome.errorCode, "E_INTENT_UNSIGNED");
    assert.deepEqual(h.runner.changes, []);
  });

  test("a deploy intent is not a dry-run intent (E_INTENT_MODE_MISMATCH); a dry-activate intent runs it and leaves the floor", async () => {
    const h = host();
    const wrong = await dryActivate(command(sign({ mode: "trial" })), h.config, h.nix, new SwitchLock(h.config.switchLockFile), silentLogger(), h.gate);
    assert.equal(wrong.errorCode, "E_INTENT_MODE_MISMATCH");
    assert.deepEqual(h.runner.changes, []);
    const outcome = await dryActivate(
      command(sign({ mode: "dry-activate" })),
      h.config,
      h.nix,
      new SwitchLock(h.config.switchLockFile),
      silentLogger(),
      h.gate,
    );
    assert.equal(outcome.success, true, outcome.errorMessage);
    assert.ok(h.runner.calls.some((argv) => argv[0] === `${NEXT}${SWITCH}` && argv[1] === "dry-activate"));
    assert.equal(h.snapshot().floor, null);
  });

  test("a dry run allowed unsigned by allowedUnsignedModes, refused when left out (E_INTENT_MODE_UNSIGNED)", async () => {
    const allowed = host({ requireSignedIntents: false });
    assert.equal(
      (await dryActivate(command(), allowed.config, allowed.nix, new SwitchLock(allowed.config.switchLockFile), silentLogger(), allowed.gate)).success,
      true,
    );
    const refused = host({ requireSignedIntents: false, allowedUnsignedModes: ["trial"] });
    const outcome = await dryActivate(command(), refused.config, refused.nix, new SwitchLock(refused.config.switchLockFile), silentLogger(), refused.gate);
    assert.equal(outcome.errorCode, "E_INTENT_MODE_UNSIGNED");
    assert.deepEqual(refused.runner.changes, []);
  });
});

describe("intent policy: configuration", () => {
  test("requireSignedIntents without a key, or a malformed key, is a configuration error", () => {
    const base = {
      controllerUrl: "ws://127.0.0.1:1/agent",
      hostName: "web1",
      tokenFile: "/t",
      substituters: ["http://127.0.0.1/cache"],
      trustedPublicKeys: [CACHE_KEY.publicKey],
    };
    assert.throws(() => parseAgentConfig({ ...base, requireSignedIntents: true }), /requireSignedIntents needs at least one key/);
    assert.throws(() => parseAgentConfig({ ...base, intentPublicKeys: ["ferry-ci-1:AAAA"] }), { code: "E_BAD_CONFIG" });
    assert.throws(() => parseAgentConfig({ ...base, allowedUnsignedModes: ["reboot"] }), { code: "E_BAD_CONFIG" });
    const defaults = parseAgentConfig(base);
    assert.deepEqual(
      [defaults.requireSignedIntents, defaults.intentPublicKeys, defaults.allowedUnsignedModes],
      [false, [], ["trial", "switch", "test", "boot", "dry-activate"]],
    );
  });
});
