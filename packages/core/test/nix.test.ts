import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { FerryError, Nix, ProcessRunner, assertAllowedProgram, type CommandResult, type CommandRunner, type CommandSpec, type ErrorCode } from "@ferry/core";

const PATH = "/nix/store/pz5wv3mkbf4bwihvsz8yqydfwb9bfhy5-nixos-system-web1";
const SUBSTITUTERS = ["http://127.0.0.1:7070/cache", "https://cache.example"];
const KEYS = ["ferry-1:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=", "other-1:YWJj"];

type Script = Partial<Omit<CommandResult, "argv">>;

/** Records every spec and answers from a script (default: success). */
class FakeRunner implements CommandRunner {
  readonly calls: CommandSpec[] = [];
  constructor(private readonly script: (spec: CommandSpec) => Script = () => ({})) {}
  async run(spec: CommandSpec): Promise<CommandResult> {
    this.calls.push(spec);
    return { argv: spec.argv, exitCode: 0, signal: null, stdout: "", stderr: "", timedOut: false, ...this.script(spec) };
  }
}

/** The value following each occurrence of `--option NAME`. */
function optionValues(argv: readonly string[], name: string): string[] {
  const values: string[] = [];
  argv.forEach((arg, i) => {
    if (arg === "--option" && argv[i + 1] === name) values.push(argv[i + 2] as string);
  });
  return values;
}

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode): Promise<FerryError> {
  let caught: unknown;
  await promise.catch((error: unknown) => {
    caught = error;
  });
  assert.ok(caught instanceof FerryError, `expected a FerryError with ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}

// Real Nix 2.8 output for the failure modes realise must tell apart.
const NIX_UNSIGNED = [
  "this path will be fetched (0.00 MiB download, 0.00 MiB unpacked):",
  `  ${PATH}`,
  `warning: the substitute for '${PATH}' from 'http://127.0.0.1:7070/cache' is not signed by any of the keys in 'trusted-public-keys'`,
  `error: build of '${PATH}' failed`,
].join("\n");
const NIX_MISSING = ["don't know how to build these paths:", `  ${PATH}`, `error: build of '${PATH}' failed`].join("\n");
const NIX_UNREACHABLE = [
  "warning: error: unable to download 'http://127.0.0.1:1/nix-cache-info': Couldn't connect to server (7); retrying in 281 ms",
  "warning: unable to download 'http://127.0.0.1:1/nix-cache-info': Couldn't connect to server (7)",
  NIX_MISSING,
].join("\n");

describe("Nix.realise", () => {
  test("passes exactly the host's substituters, keys and strictness options, plus --add-root", async () => {
    const runner = new FakeRunner();
    await new Nix(runner, { NIX_REMOTE: "daemon" }).realise(PATH, {
      substituters: SUBSTITUTERS,
      trustedPublicKeys: KEYS,
      gcRoot: "/var/lib/ferry-agent/gcroots/next",
      timeoutMs: 1234,
    });
    assert.equal(runner.calls.length, 1);
    const spec = runner.calls[0] as CommandSpec;
    const { argv } = spec;
    assert.deepEqual(argv.slice(0, 3), ["nix-store", "--realise", PATH]);
    assert.deepEqual(optionValues(argv, "substituters"), [SUBSTITUTERS.join(" ")]);
    assert.deepEqual(optionValues(argv, "trusted-public-keys"), [KEYS.join(" ")]);
    assert.deepEqual(optionValues(argv, "require-sigs"), ["true"]);
    assert.deepEqual(optionValues(argv, "narinfo-cache-negative-ttl"), ["0"]);
    // Nothing may be built locally or remotely: substitution only.
    assert.deepEqual(optionValues(argv, "max-jobs"), ["0"]);
    assert.deepEqual(optionValues(argv, "builders"), [""]);
    const rootAt = argv.indexOf("--add-root");
    assert.ok(rootAt > 0);
    assert.equal(argv[rootAt + 1], "/var/lib/ferry-agent/gcroots/next");
    assert.equal(argv.filter((arg) => arg === "--add-root").length, 1);
    // No option the test does not know about sneaks in (e.g. extra-substituters).
    const names = argv.flatMap((arg, i) => (arg === "--option" ? [argv[i + 1]] : []));
    assert.deepEqual(names.sort(), ["builders", "max-jobs", "narinfo-cache-negative-ttl", "require-sigs", "substituters", "trusted-public-keys"]);
    assert.equal(spec.timeoutMs, 1234);
    assert.deepEqual(spec.env, { NIX_REMOTE: "daemon" });
  });

  test("without gcRoot there is no --add-root", async () => {
    const runner = new FakeRunner();
    await new Nix(runner).realise(PATH, { substituters: SUBSTITUTERS, trustedPublicKeys: KEYS });
    assert.equal(runner.calls[0]?.argv.includes("--add-root"), false);
  });

  const classify: [string, Script, ErrorCode][] = [
    ["unsigned (Nix 2.8 wording)", { exitCode: 1, stderr: NIX_UNSIGNED }, "E_UNSIGNED_PATH"],
    ["unsigned (newer wording)", { exitCode: 1, stderr: `error: cannot add path '${PATH}' because it lacks a signature by a trusted key` }, "E_UNSIGNED_PATH"],
    ["unsigned message on stdout", { exitCode: 1, stdout: "is not signed by any of the keys in 'trusted-public-keys'" }, "E_UNSIGNED_PATH"],
    ["not in any cache", { exitCode: 1, stderr: NIX_MISSING }, "E_PATH_NOT_IN_CACHE"],
    ["other failure", { exitCode: 1, stderr: "error: writing to file: No space left on device" }, "E_FETCH_FAILED"],
    ["killed by a signal", { exitCode: null, signal: "SIGKILL", stderr: "" }, "E_FETCH_FAILED"],
    ["timed out", { exitCode: null, signal: "SIGTERM", timedOut: true, stderr: "copying path '/nix/store/…' from 'http://…'" }, "E_COMMAND_TIMEOUT"],
  ];
  for (const [name, script, code] of classify) {
    test(`classifies failure: ${name} → ${code}, output attached`, async () => {
      const runner = new FakeRunner(() => script);
      const error = await rejectsWith(new Nix(runner).realise(PATH, { substituters: SUBSTITUTERS, trustedPublicKeys: KEYS }), code);
      const expected = [script.stdout, script.stderr].filter(Boolean).join("\n").trimEnd();
      assert.equal(error.output, expected);
      assert.match(error.message, new RegExp(PATH.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
    });
  }

  test("an unreachable substituter is a fetch failure, not a missing path", async () => {
    const runner = new FakeRunner(() => ({ exitCode: 1, stderr: NIX_UNREACHABLE }));
    await rejectsWith(new Nix(runner).realise(PATH, { substituters: ["http://127.0.0.1:1"], trustedPublicKeys: KEYS }), "E_FETCH_FAILED");
  });

  test("invalid store paths never reach the runner", async () => {
    const runner = new FakeRunner();
    const nix = new Nix(runner);
    for (const bad of ["/tmp/x", `${PATH}/../../etc`, "--option", `${PATH} --option substituters http://evil`, ""]) {
      await rejectsWith(nix.realise(bad, { substituters: SUBSTITUTERS, trustedPublicKeys: KEYS }), "E_BAD_STORE_PATH");
      await rejectsWith(nix.switchToConfiguration(bad, "switch", 1000), "E_BAD_STORE_PATH");
      await rejectsWith(nix.setProfile("/nix/var/nix/profiles/system", bad), "E_BAD_STORE_PATH");
      await rejectsWith(nix.isValid(bad), "E_BAD_STORE_PATH");
      await rejectsWith(nix.closure([PATH, bad]), "E_BAD_STORE_PATH");
      await rejectsWith(nix.copyTo("http://x", [bad]), "E_BAD_STORE_PATH");
    }
    assert.equal(runner.calls.length, 0);
  });
});

describe("Nix.switchToConfiguration and friends", () => {
  test("runs PATH/bin/switch-to-configuration ACTION with the timeout and returns its output", async () => {
    const runner = new FakeRunner(() => ({ stdout: "activating the configuration...\n", stderr: "setting up /etc...\n" }));
    const output = await new Nix(runner).switchToConfiguration(PATH, "boot", 5000);
    assert.deepEqual(runner.calls[0]?.argv, [`${PATH}/bin/switch-to-configuration`, "boot"]);
    assert.equal(runner.calls[0]?.timeoutMs, 5000);
    assert.equal(output, "activating the configuration...\nsetting up /etc...");
  });

  test("non-zero exit → E_ACTIVATION_FAILED with the output attached", async () => {
    const runner = new FakeRunner(() => ({ exitCode: 4, stderr: "warning: the following units failed: nginx.service\n" }));
    const error = await rejectsWith(new Nix(runner).switchToConfiguration(PATH, "switch", 5000), "E_ACTIVATION_FAILED");
    assert.match(error.output, /nginx\.service/);
    assert.match(error.message, /exited with 4/);
  });

  test("timeout → E_ACTIVATION_TIMEOUT with output", async () => {
    const runner = new FakeRunner(() => ({ exitCode: null, signal: "SIGTERM", timedOut: true, stdout: "stopping units: foo.service" }));
    const error = await rejectsWith(new Nix(runner).switchToConfiguration(PATH, "switch", 10), "E_ACTIVATION_TIMEOUT");
    assert.match(error.output, /foo\.service/);
  });

  test("setProfile: nix-env -p PROFILE --set PATH; failure → E_PROFILE_FAILED; timeout of other commands → E_COMMAND_TIMEOUT", async () => {
    const ok = new FakeRunner();
    await new Nix(ok).setProfile("/tmp/profile", PATH);
    assert.deepEqual(ok.calls[0]?.argv, ["nix-env", "-p", "/tmp/profile", "--set", PATH]);
    await rejectsWith(
      new Nix(new FakeRunner(() => ({ exitCode: 1, stderr: "error: opening lock file" }))).setProfile("/tmp/profile", PATH),
      "E_PROFILE_FAILED",
    );
    await rejectsWith(new Nix(new FakeRunner(() => ({ exitCode: null, timedOut: true }))).setProfile("/tmp/profile", PATH), "E_COMMAND_TIMEOUT");
  });

  test("closure validates every line nix-store prints", async () => {
    const other = "/nix/store/1zy01hjzwvvia6h9dq5xar88v77fgh9x-glibc-2.39";
    const good = new FakeRunner(() => ({ stdout: `${other}\n${PATH}\n` }));
    assert.deepEqual(await new Nix(good).closure([PATH]), [other, PATH]);
    assert.deepEqual(good.calls[0]?.argv, ["nix-store", "--query", "--requisites", PATH]);
    await rejectsWith(new Nix(new FakeRunner(() => ({ stdout: `${PATH}\n/tmp/evil\n` }))).closure([PATH]), "E_BAD_STORE_PATH");
  });

  test("isValid maps the exit code", async () => {
    assert.equal(await new Nix(new FakeRunner()).isValid(PATH), true);
    assert.equal(await new Nix(new FakeRunner(() => ({ exitCode: 1 }))).isValid(PATH), false);
  });
});

describe("ProcessRunner and assertAllowedProgram", () => {
  test("refuses programs outside the allow-list before starting anything", async () => {
    const runner = new ProcessRunner();
    for (const program of ["sh", "/bin/sh", "/bin/rm", "bash", "env", "./nix-store", "/usr/bin/nix-store", "nix-store ", ""]) {
      // Sync throw or rejection are both refusals; wrapping makes either a rejection.
      await assert.rejects(
        async () => runner.run({ argv: [program, "-c", "exit 0"] }),
        (error: unknown) => error instanceof FerryError && error.code === "E_INTERNAL" && /refusing/.test(error.message),
        program,
      );
    }
    await assert.rejects(async () => runner.run({ argv: [] }), FerryError);
  });

  test("runs nix-store --version for real", async () => {
    const result = await new ProcessRunner().run({ argv: ["nix-store", "--version"], timeoutMs: 10_000 });
    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(result.timedOut, false);
    assert.match(result.stdout, /^nix-store \(Nix\) \d+\.\d+/);
  });

  test("stdout is cut to its tail unless the command raises stdoutLimit (listings are parsed whole)", async () => {
    const argv = [
      "nix",
      "--extra-experimental-features",
      "nix-command",
      "eval",
      "--raw",
      "--expr",
      'builtins.concatStringsSep "" (builtins.genList (i: "0123456789") 100000)',
    ];
    const cut = await new ProcessRunner().run({ argv, timeoutMs: 30_000 });
    assert.equal(cut.exitCode, 0, cut.stderr);
    assert.ok(cut.stdout.startsWith("[…]") && cut.stdout.length < 300_000, `kept ${cut.stdout.length} chars`);
    const whole = await new ProcessRunner().run({ argv, timeoutMs: 30_000, stdoutLimit: 4 * 1024 * 1024 });
    assert.equal(whole.stdout, "0123456789".repeat(100000));
  });

  test("closure listings ask the runner for their whole output", async () => {
    const runner = new FakeRunner((spec) => ({ stdout: spec.argv.includes("path-info") ? "[]" : "" }));
    const nix = new Nix(runner);
    await nix.closureSignatures(PATH);
    await nix.cachedPathInfos("http://127.0.0.1:1/cache", [PATH]);
    await nix.closure([PATH]);
    await nix.pathInfos([PATH]);
    for (const spec of runner.calls) assert.ok((spec.stdoutLimit ?? 0) >= 64 * 1024 * 1024, spec.argv.join(" "));
  });

  test("a failing nix command reports its exit code and stderr", async () => {
    const result = await new ProcessRunner().run({ argv: ["nix-store", "--query", "--no-such-flag-for-ferry"], timeoutMs: 10_000 });
    assert.notEqual(result.exitCode, 0);
    assert.equal(result.timedOut, false);
    assert.match(result.stderr, /error/);
  });

  test("assertAllowedProgram: Nix tools and a store path's switch script only", () => {
    for (const program of ["nix", "nix-store", "nix-env", "nix-build", "nix-instantiate", "nix-collect-garbage", `${PATH}/bin/switch-to-configuration`]) {
      assert.equal(assertAllowedProgram(program), program);
    }
    for (const program of [
      "/tmp/x/bin/switch-to-configuration",
      `${PATH}/../../tmp/bin/switch-to-configuration`,
      `${PATH}/sub/bin/switch-to-configuration`,
      "/bin/switch-to-configuration",
      `${PATH}/bin/sh`,
      `${PATH}/bin/switch-to-configuration/..`,
      undefined,
    ]) {
      assert.throws(
        () => assertAllowedProgram(program),
        (error: unknown) => error instanceof FerryError && error.code === "E_INTERNAL",
        String(program),
      );
    }
  });
});
