import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FerryError, Nix, silentLogger, type CommandResult, type CommandRunner, type CommandSpec } from "@ferry/core";
import { parseAgentConfig } from "../src/config.js";
import { compileAgentConfig, type AgentSettings } from "../src/settings.js";
import { requireTrustedSignatures } from "../src/verify-closure-signatures.js";
import { makeKey, pathInfoJson, type PathInfoJson } from "./signed-paths.js";

// The agent's check of every closure path's signature before a switch
// (packages/agent/src/verify-closure-signatures.ts), against a fake Nix.
const TOP = "/nix/store/pz5wv3mkbf4bwihvsz8yqydfwb9bfhy5-nixos-system-web1-new";
const DEP = "/nix/store/1zy01hjzwvvia6h9dq5xar88v77fgh9x-hello";
const CACHES = ["http://127.0.0.1:1/cache", "file:///srv/other-cache"];
const hostKey = makeKey("fleet-1");
const foreignKey = makeKey("someone-else-1");

const root = mkdtempSync(join(tmpdir(), "ferry-sigcheck-"));
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;

/** A store whose signatures `copy-sigs` may extend, as Nix would from a substituter. */
class FakeStore implements CommandRunner {
  readonly calls: string[][] = [];
  constructor(
    public infos: PathInfoJson[],
    private readonly onCopySigs: (store: FakeStore, argv: string[]) => Partial<CommandResult> = () => ({}),
  ) {}

  async run(spec: CommandSpec): Promise<CommandResult> {
    const argv = [...spec.argv];
    this.calls.push(argv);
    const base: CommandResult = { argv, exitCode: 0, signal: null, stdout: "", stderr: "", timedOut: false };
    if (argv.includes("path-info")) {
      assert.ok(argv.includes("--sigs") && argv.includes("--recursive") && argv.includes("--json"), argv.join(" "));
      return { ...base, stdout: JSON.stringify(this.infos) };
    }
    if (argv.includes("copy-sigs")) return { ...base, ...this.onCopySigs(this, argv) };
    throw new Error(`unexpected command ${argv.join(" ")}`);
  }

  get copySigCalls(): string[][] {
    return this.calls.filter((argv) => argv.includes("copy-sigs"));
  }
}

function setup(store: FakeStore, previous?: string): { config: AgentSettings; check: (path: string) => Promise<void> } {
  const stateDir = join(root, `case-${++counter}`);
  mkdirSync(join(stateDir, "gcroots"), { recursive: true });
  if (previous) symlinkSync(previous, join(stateDir, "gcroots", "previous"));
  const config = compileAgentConfig(
    parseAgentConfig({
      controllerUrl: "ws://127.0.0.1:1/agent",
      hostName: "web1",
      tokenFile: join(stateDir, "token"),
      substituters: CACHES,
      trustedPublicKeys: [hostKey.publicKey],
      stateDir,
    }),
  );
  return { config, check: (path) => requireTrustedSignatures({ config, nix: new Nix(store), log: silentLogger() }, path) };
}

async function refusal(promise: Promise<void>): Promise<FerryError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof FerryError);
    return error;
  }
  assert.fail("the closure was accepted");
}

describe("requireTrustedSignatures", () => {
  test("a closure signed by the host's key passes without asking any cache", async () => {
    const store = new FakeStore([pathInfoJson(TOP, hostKey, [DEP]), pathInfoJson(DEP, hostKey)]);
    await setup(store).check(TOP);
    assert.deepEqual(store.copySigCalls, []);
  });

  test("a path built on the host (ultimate, unsigned) is refused: E_UNSIGNED_PATH names it", async () => {
    const store = new FakeStore([pathInfoJson(TOP, hostKey, [DEP]), pathInfoJson(DEP, null)]);
    const error = await refusal(setup(store).check(TOP));
    assert.equal(error.code, "E_UNSIGNED_PATH");
    assert.equal(error.message, `${DEP} carries no signature (it was built or added on this machine, which does not count); ${TOP} is not switched to`);
  });

  test("signed by a key the host does not trust", async () => {
    const store = new FakeStore([pathInfoJson(TOP, foreignKey)]);
    const error = await refusal(setup(store).check(TOP));
    assert.equal(error.code, "E_UNSIGNED_PATH");
    assert.match(error.message, /only by keys this host does not trust \(someone-else-1\)/);
  });

  test("only the lacking paths are looked up in each of the host's own caches; signatures found there count", async () => {
    const store = new FakeStore([pathInfoJson(TOP, hostKey, [DEP]), pathInfoJson(DEP, null)], (self) => {
      self.infos = [pathInfoJson(TOP, hostKey, [DEP]), pathInfoJson(DEP, hostKey)];
      return {};
    });
    await setup(store).check(TOP);
    assert.deepEqual(
      store.copySigCalls.map((argv) => [argv[argv.indexOf("--substituter") + 1], argv.filter((arg) => arg.startsWith("/nix/store/"))]),
      CACHES.map((cache) => [cache, [DEP]]),
    );
  });

  test("a signature copied from a cache but made for other contents does not count", async () => {
    const store = new FakeStore([pathInfoJson(DEP, null)], (self) => {
      const forged = pathInfoJson("/nix/store/4jbbrpmvq2g4b4q3ws2gf4hy6zm8lq2d-other", hostKey);
      self.infos = [{ ...pathInfoJson(DEP, null), signatures: forged.signatures ?? [] }];
      return {};
    });
    const error = await refusal(setup(store).check(DEP));
    assert.equal(error.code, "E_UNSIGNED_PATH");
    assert.match(error.message, /signature by a trusted key \(fleet-1\) that does not match/);
  });

  test("an unreachable cache leaves the refusal as it was, not a fetch error", async () => {
    const store = new FakeStore([pathInfoJson(TOP, null)], () => ({ exitCode: 1, stderr: "unable to download 'http://127.0.0.1:1/cache/nix-cache-info'" }));
    const error = await refusal(setup(store).check(TOP));
    assert.equal(error.code, "E_UNSIGNED_PATH");
    assert.equal(store.copySigCalls.length, CACHES.length);
  });

  test("returning to the exact previous system is not checked again; anything else is", async () => {
    const store = new FakeStore([pathInfoJson(TOP, null)]);
    const { check } = setup(store, TOP);
    await check(TOP);
    assert.deepEqual(store.calls, []);
    store.infos = [pathInfoJson(DEP, null)];
    assert.equal((await refusal(check(DEP))).code, "E_UNSIGNED_PATH");
  });

  test("a malformed trusted key in the configuration is a configuration error", async () => {
    const store = new FakeStore([pathInfoJson(TOP, hostKey)]);
    const { config } = setup(store);
    const error = await refusal(
      requireTrustedSignatures({ config: { ...config, trustedPublicKeys: ["fleet-1:QUJD"] }, nix: new Nix(store), log: silentLogger() }, TOP),
    );
    assert.equal(error.code, "E_BAD_CONFIG");
  });
});
