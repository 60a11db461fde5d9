// Contexts in $XDG_CONFIG_HOME/ferry/config.json: the verbs that manage
// them, how a context is chosen, and flag > environment > context.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { FerryError } from "@ferry/core";
import { readCliConfig } from "../src/cli-config.js";
import { TestController, cleanEnv, ferry } from "./cli-process.js";

type ErrorJson = { error: { code: string; message: string } };

describe("the CLI configuration file", () => {
  test("an absent file is an empty configuration", () => {
    assert.deepEqual(readCliConfig(join(mkdtempSync(join(tmpdir(), "ferry-cfg-")), "config.json")), { contexts: {} });
  });

  test("a malformed file is E_BAD_CONFIG naming the file and the key", () => {
    const dir = mkdtempSync(join(tmpdir(), "ferry-cfg-"));
    const file = join(dir, "config.json");
    for (const [text, detail] of [
      ["{", /is not valid JSON/],
      ["[]", /expected an object/],
      ['{"contexts": {"a": {"tokenfile": "x"}}}', /contexts\.a: unknown key "tokenfile" \(known: controller, tokenFile, caFile, clientCert, clientKey\)/],
      ['{"contexts": {"a": {"controller": 7071}}}', /contexts\.a\.controller must be a non-empty string/],
      ['{"contexts": {"a b": {}}}', /context name "a b"/],
      ['{"current": "a"}', /unknown key "current"/],
    ] as const) {
      writeFileSync(file, text);
      assert.throws(
        () => readCliConfig(file),
        (error: unknown) => error instanceof FerryError && error.code === "E_BAD_CONFIG" && error.message.startsWith(file) && detail.test(error.message),
        text,
      );
    }
  });

  test("a relative tokenFile is read from the file's directory", () => {
    const dir = mkdtempSync(join(tmpdir(), "ferry-cfg-"));
    writeFileSync(join(dir, "config.json"), '{"contexts": {"a": {"tokenFile": "tokens/a.token"}, "b": {"tokenFile": "/abs/b.token"}}}');
    const config = readCliConfig(join(dir, "config.json"));
    assert.equal(config.contexts["a"]?.tokenFile, join(dir, "tokens", "a.token"));
    assert.equal(config.contexts["b"]?.tokenFile, "/abs/b.token");
  });
});

describe("ferry context and operator verbs with contexts", () => {
  const controller = new TestController();
  let env: Record<string, string>;
  let configFile: string;
  let wrongToken: string;

  before(async () => {
    await controller.start();
    env = cleanEnv();
    configFile = join(env["XDG_CONFIG_HOME"] as string, "ferry", "config.json");
    wrongToken = join(controller.dir, "wrong.token");
    writeFileSync(wrongToken, "not-the-token\n");
  });

  after(async () => {
    await controller.stop();
  });

  test("set, list, use, show and remove, each with --json; the file is written atomically, 0600", async () => {
    const work = mkdtempSync(join(tmpdir(), "ferry-cwd-"));
    const relative = await ferry(["context", "set", "lab", "--controller", controller.address, "--token-file", "../x.token", "--json"], env, { cwd: work });
    assert.equal(relative.code, 0, relative.stderr);
    assert.deepEqual(relative.json(), {
      file: configFile,
      created: true,
      name: "lab",
      current: true,
      controller: controller.address,
      tokenFile: join(dirname(work), "x.token"),
    });
    const set = await ferry(["context", "set", "lab", "--token-file", controller.tokenFile, "--json"], env);
    assert.equal(set.json<{ created: boolean; tokenFile: string }>().created, false);
    assert.equal((await ferry(["context", "set", "other", "--controller", "127.0.0.1:1", "--token-file", wrongToken], env)).code, 0);
    assert.equal(statSync(configFile).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(join(env["XDG_CONFIG_HOME"] as string, "ferry")), ["config.json"]);
    assert.deepEqual(JSON.parse(readFileSync(configFile, "utf8")), {
      currentContext: "lab",
      contexts: {
        lab: { controller: controller.address, tokenFile: controller.tokenFile },
        other: { controller: "127.0.0.1:1", tokenFile: wrongToken },
      },
    });

    const list = (await ferry(["context", "list", "--json"], env)).json<{ currentContext: string; contexts: { name: string; current: boolean }[] }>();
    assert.equal(list.currentContext, "lab");
    assert.deepEqual(
      list.contexts.map((c) => [c.name, c.current]),
      [
        ["lab", true],
        ["other", false],
      ],
    );

    // The current context is used from any directory.
    const status = await ferry(["status", "--json"], env, { cwd: work });
    assert.equal(status.code, 0, status.stderr);
    assert.deepEqual(status.json(), { hosts: [] });

    assert.equal((await ferry(["context", "use", "other", "--json"], env)).json<{ currentContext: string }>().currentContext, "other");
    const shown = (await ferry(["context", "show", "--json"], env)).json<{
      context: { value: string; from: string };
      controller: { value: string; from: string };
    }>();
    assert.deepEqual(shown.context, { value: "other", from: "currentContext" });
    assert.deepEqual(shown.controller, { value: "127.0.0.1:1", from: 'context "other"' });
    const named = (await ferry(["context", "show", "lab", "--json"], env)).json<{ current: boolean; controller: string }>();
    assert.deepEqual([named.current, named.controller], [false, controller.address]);

    const removed = await ferry(["context", "remove", "other", "--json"], env);
    assert.deepEqual(removed.json(), { file: configFile, removed: "other", currentContext: null });
    assert.deepEqual(JSON.parse(readFileSync(configFile, "utf8")), { contexts: { lab: { controller: controller.address, tokenFile: controller.tokenFile } } });
    assert.equal((await ferry(["context", "use", "lab"], env)).code, 0);
  });

  test("--context beats FERRY_CONTEXT beats the current context; flags and variables beat the context", async () => {
    assert.equal((await ferry(["context", "set", "broken", "--controller", "127.0.0.1:1", "--token-file", wrongToken], env)).code, 0);
    assert.equal((await ferry(["context", "use", "lab"], env)).code, 0);
    const unreachable = (result: { json: () => unknown }) => (result.json() as ErrorJson).error.code;
    // FERRY_CONTEXT picks "broken" over the current "lab"; --context picks "lab" back.
    assert.equal(unreachable(await ferry(["status", "--json"], { ...env, FERRY_CONTEXT: "broken" })), "E_CONTROLLER_UNREACHABLE");
    assert.equal((await ferry(["status", "--json", "--context", "lab"], { ...env, FERRY_CONTEXT: "broken" })).code, 0);
    // A variable beats the context it would otherwise come from, and a flag beats the variable.
    assert.equal(unreachable(await ferry(["status", "--json"], { ...env, FERRY_CONTROLLER: "127.0.0.1:1" })), "E_CONTROLLER_UNREACHABLE");
    assert.equal((await ferry(["status", "--json", "--controller", controller.address], { ...env, FERRY_CONTROLLER: "127.0.0.1:1" })).code, 0);
    assert.equal(unreachable(await ferry(["status", "--json"], { ...env, FERRY_TOKEN_FILE: wrongToken })), "E_AUTH");
    assert.equal((await ferry(["status", "--json", "--token-file", controller.tokenFile], { ...env, FERRY_TOKEN_FILE: wrongToken })).code, 0);
    const shown = (await ferry(["context", "show", "--json"], { ...env, FERRY_TOKEN_FILE: wrongToken })).json<{ tokenFile: { value: string; from: string } }>();
    assert.deepEqual(shown.tokenFile, { value: wrongToken, from: "FERRY_TOKEN_FILE" });
  });

  test("an unknown context is E_UNKNOWN_CONTEXT naming it and the known ones", async () => {
    for (const [args, extra, origin] of [
      [["status", "--context", "nope"], {}, "--context"],
      [["status"], { FERRY_CONTEXT: "nope" }, "FERRY_CONTEXT"],
      [["context", "use", "nope"], {}, "given to ferry context use"],
      [["context", "remove", "nope"], {}, "given to ferry context remove"],
    ] as const) {
      const result = await ferry([...args, "--json"], { ...env, ...extra });
      assert.equal(result.code, 1);
      const { error } = result.json<ErrorJson>();
      assert.equal(error.code, "E_UNKNOWN_CONTEXT");
      assert.match(error.message, new RegExp(`^no context "nope" \\(from ${origin}\\)|^no context "nope" \\(${origin}\\)`));
      assert.match(error.message, /known: lab, broken/);
    }
    const before = readFileSync(configFile, "utf8");
    assert.equal((await ferry(["context", "set", "bad name", "--controller", "h:1"], env)).code, 2);
    assert.equal((await ferry(["context", "set", "x", "--controller", "no-port"], env)).code, 2);
    assert.equal(readFileSync(configFile, "utf8"), before, "a refused change leaves the file as it was");
  });

  test("a malformed configuration is E_BAD_CONFIG naming the file, for operator verbs too", async () => {
    const broken = cleanEnv();
    const file = join(broken["XDG_CONFIG_HOME"] as string, "ferry", "config.json");
    mkdirSync(join(broken["XDG_CONFIG_HOME"] as string, "ferry"), { recursive: true });
    writeFileSync(file, '{"contexts": ');
    for (const args of [["status"], ["context", "list"]]) {
      const { error } = (await ferry([...args, "--json"], broken)).json<ErrorJson>();
      assert.equal(error.code, "E_BAD_CONFIG");
      assert.ok(error.message.startsWith(`${file} is not valid JSON`), error.message);
    }
    // Flags that say everything need no configuration at all.
    assert.equal((await ferry(["status", "--json", ...controller.connection()], broken)).code, 0);
  });

  test("without any address the error says how to give one", async () => {
    const { error } = (await ferry(["status", "--json"], cleanEnv())).json<ErrorJson>();
    assert.equal(error.code, "E_BAD_ARGUMENT");
    assert.match(error.message, /--controller HOST:PORT, set FERRY_CONTROLLER, or make a context \(ferry context set NAME/);
  });
});
