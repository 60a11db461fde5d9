import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FerryError } from "@ferry/core";
import { AGENT_CONFIG_SCHEMA, CONTROLLER_KEYS, loadAgentConfig, parseAgentConfig, requireControllerSettings } from "@ferry/agent";

const MINIMAL = {
  controllerUrl: "ws://127.0.0.1:7070/agent",
  hostName: "web1",
  tokenFile: "/run/secrets/ferry-token",
  substituters: ["http://127.0.0.1:7070/cache"],
  trustedPublicKeys: ["ferry-1:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="],
};

function badConfig(raw: unknown, ...patterns: RegExp[]): FerryError {
  let caught: unknown;
  try {
    parseAgentConfig(raw);
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof FerryError, `expected E_BAD_CONFIG, got ${String(caught)}`);
  assert.equal(caught.code, "E_BAD_CONFIG", caught.message);
  for (const pattern of patterns) assert.match(caught.message, pattern);
  return caught;
}

describe("parseAgentConfig", () => {
  test("fills every default the schema declares, and only those", () => {
    const config = parseAgentConfig(MINIMAL) as unknown as Record<string, unknown>;
    const properties = AGENT_CONFIG_SCHEMA.properties as Record<string, { default?: unknown }>;
    const expected: Record<string, unknown> = { ...MINIMAL };
    for (const [key, schema] of Object.entries(properties)) if (schema.default !== undefined) expected[key] = schema.default;
    assert.deepEqual(config, expected);
    // The defaults a NixOS host relies on, spelled out.
    assert.equal(config["stateDir"], "/var/lib/ferry-agent");
    assert.equal(config["profile"], "/nix/var/nix/profiles/system");
    assert.equal(config["currentSystemLink"], "/run/current-system");
    assert.deepEqual(config["healthChecks"], []);
    assert.equal(typeof config["activationTimeout"], "number");
    assert.equal(typeof config["fetchTimeout"], "number");
    // Every key of the result is a key of the schema.
    for (const key of Object.keys(config)) assert.ok(key in properties, key);
  });

  test("the returned defaults are not shared between calls", () => {
    const first = parseAgentConfig(MINIMAL);
    first.healthChecks.push({ type: "systemd", units: ["x"], strict: false });
    assert.deepEqual(parseAgentConfig(MINIMAL).healthChecks, []);
  });

  test("does not modify its input", () => {
    const raw = structuredClone(MINIMAL);
    parseAgentConfig(raw);
    assert.deepEqual(raw, MINIMAL);
  });

  test("keeps given values and accepts each kind of health check", () => {
    const checks = [
      { type: "systemd", units: ["nginx.service"], strict: false },
      { type: "http", url: "http://127.0.0.1/health", expectStatus: 204, bodyContains: "ok", timeout: 2, strict: true },
      { type: "command", argv: ["/bin/true"], timeout: 3, strict: true },
    ];
    const config = parseAgentConfig({
      ...MINIMAL,
      controllerUrl: "wss://controller.example/agent",
      strategy: "boot",
      activationTimeout: 30,
      healthChecks: checks,
    });
    assert.equal(config.controllerUrl, "wss://controller.example/agent");
    assert.equal(config.strategy, "boot");
    assert.equal(config.activationTimeout, 30);
    assert.deepEqual(config.healthChecks, checks);
  });

  test("fills health check defaults (strict, expectStatus, timeout)", () => {
    const config = parseAgentConfig({
      ...MINIMAL,
      healthChecks: [
        { type: "systemd", units: ["nginx.service"] },
        { type: "http", url: "http://127.0.0.1/health" },
        { type: "command", argv: ["/bin/true"], strict: true },
      ],
    });
    assert.deepEqual(config.healthChecks, [
      { type: "systemd", units: ["nginx.service"], strict: false },
      { type: "http", url: "http://127.0.0.1/health", expectStatus: 200, timeout: 5, strict: false },
      { type: "command", argv: ["/bin/true"], timeout: 30, strict: true },
    ]);
  });

  test("an unknown top-level key is rejected by name", () => {
    badConfig({ ...MINIMAL, substituter: ["http://x"] }, /unknown key "substituter"/);
    badConfig({ ...MINIMAL, requireSigs: false }, /unknown key "requireSigs"/, /top level/);
  });

  test("an unknown key inside a health check is rejected by name", () => {
    badConfig({ ...MINIMAL, healthChecks: [{ type: "systemd", units: ["a.service"], unitz: ["b.service"] }] }, /unitz/);
    badConfig({ ...MINIMAL, healthChecks: [{ type: "http", url: "http://x/", expectedStatus: 204 }] }, /expectedStatus/);
  });

  test("a health check of an unknown type or missing its own required key is rejected", () => {
    badConfig({ ...MINIMAL, healthChecks: [{ type: "ping", host: "x" }] });
    badConfig({ ...MINIMAL, healthChecks: [{ type: "command" }] }, /argv/);
    badConfig({ ...MINIMAL, healthChecks: [{ units: ["a"] }] }, /type/);
  });

  test("each missing required key is named", () => {
    for (const key of ["hostName", "trustedPublicKeys"]) {
      const raw: Record<string, unknown> = { ...MINIMAL };
      delete raw[key];
      badConfig(raw, new RegExp(`missing key "${key}"`));
    }
  });

  test("several problems are all reported", () => {
    const error = badConfig({ hostName: "web1", bogus: 1, controllerUrl: "http://x" });
    for (const key of ["controllerUrl", "trustedPublicKeys", "bogus"]) assert.match(error.message, new RegExp(key));
  });

  test("a standalone host's minimal configuration (no controller keys) is valid, and `ferry agent` is told what it lacks", () => {
    const standalone = { hostName: "kiosk1", trustedPublicKeys: MINIMAL.trustedPublicKeys, stateDir: "/var/lib/ferry-agent" };
    const config = parseAgentConfig(standalone);
    for (const key of CONTROLLER_KEYS) assert.equal(config[key], undefined);
    assert.throws(
      () => requireControllerSettings(config),
      (error: unknown) =>
        error instanceof FerryError &&
        error.code === "E_BAD_CONFIG" &&
        /missing "controllerUrl", "tokenFile", "substituters"/.test(error.message) &&
        /apply-bundle/.test(error.message),
    );
    // null is "not set", as a generator writes it.
    const nulls = parseAgentConfig({ ...standalone, controllerUrl: null, tokenFile: null, substituters: null });
    assert.deepEqual(nulls, config);
    // Each key alone is named.
    for (const key of CONTROLLER_KEYS) {
      const raw: Record<string, unknown> = { ...MINIMAL };
      delete raw[key];
      assert.throws(
        () => requireControllerSettings(parseAgentConfig(raw)),
        (error: unknown) => error instanceof FerryError && error.message.includes(`missing "${key}"`) && !/missing "[^"]+", /.test(error.message),
      );
    }
    assert.equal(requireControllerSettings(parseAgentConfig(MINIMAL)).controllerUrl, MINIMAL.controllerUrl);
  });

  test("a bad host name is rejected", () => {
    for (const hostName of ["web/1", "..", "a b", "-web", ""]) {
      assert.throws(
        () => parseAgentConfig({ ...MINIMAL, hostName }),
        (error: unknown) => error instanceof FerryError && (error.code === "E_BAD_CONFIG" || error.code === "E_BAD_HOST_NAME"),
        hostName,
      );
    }
  });

  test("the host name comes out canonical: an agent configured as Web-1 says hello as web-1", () => {
    assert.equal(parseAgentConfig({ ...MINIMAL, hostName: "Web-1" }).hostName, "web-1");
  });

  test("URLs with the wrong scheme are rejected, naming the key", () => {
    badConfig({ ...MINIMAL, controllerUrl: "http://127.0.0.1:7070/agent" }, /controllerUrl/);
    badConfig({ ...MINIMAL, controllerUrl: "ws://with space/agent" }, /controllerUrl/);
    badConfig({ ...MINIMAL, substituters: ["ftp://cache.example"] }, /substituters/);
    badConfig({ ...MINIMAL, substituters: ["http://ok", "ssh://cache.example"] }, /substituters/);
    badConfig({ ...MINIMAL, healthChecks: [{ type: "http", url: "file:///etc/passwd" }] }, /healthChecks/);
  });

  test("wrong types, ranges and enum values are rejected", () => {
    badConfig({ ...MINIMAL, activationTimeout: 0 }, /activationTimeout/);
    badConfig({ ...MINIMAL, fetchTimeout: "10" }, /fetchTimeout/);
    badConfig({ ...MINIMAL, keepGenerations: 1.5 }, /keepGenerations/);
    badConfig({ ...MINIMAL, strategy: "yolo" }, /strategy/);
    badConfig({ ...MINIMAL, logLevel: "trace" }, /logLevel/);
    badConfig({ ...MINIMAL, substituters: [] }, /substituters/);
    badConfig({ ...MINIMAL, trustedPublicKeys: ["no-colon"] }, /trustedPublicKeys/);
    badConfig({ ...MINIMAL, trustedPublicKeys: ["k:bad key"] }, /trustedPublicKeys/);
  });

  // A check that cannot run fails before the switch too, counts as "already
  // failing" and would silently turn rollback off: it is a configuration error.
  test("a command check whose program is not an absolute path is refused, with its index", () => {
    badConfig(
      {
        ...MINIMAL,
        healthChecks: [
          { type: "command", argv: ["/bin/true"] },
          { type: "command", argv: ["sh", "-c", "curl -f localhost"] },
        ],
      },
      /healthChecks\[1\] \(command:sh -c curl -f localhost\)/,
      /argv\[0\] "sh" is not an absolute path/,
    );
  });

  test("an http check whose URL does not parse is refused, with its index", () => {
    const error = badConfig(
      {
        ...MINIMAL,
        healthChecks: [
          { type: "http", url: "http://127.0.0.1/ok" },
          { type: "http", url: "http://local host:8080/health" },
        ],
      },
      /healthChecks\[1\] \(http:http:\/\/local host:8080\/health\)/,
      /is not a valid URL/,
    );
    assert.doesNotMatch(error.message, /healthChecks\[0\]/);
  });

  test("a systemd check naming something that is no unit name is refused, with its index", () => {
    badConfig(
      { ...MINIMAL, healthChecks: [{ type: "systemd", units: ["nginx.service", "--host=evil"] }] },
      /healthChecks\[0\]/,
      /"--host=evil" is not a systemd unit name/,
    );
    badConfig({ ...MINIMAL, healthChecks: [{ type: "systemd", units: ["../etc/x.service"] }] }, /"\.\.\/etc\/x\.service" is not a systemd unit name/);
  });

  test("every check that cannot run is named, each by its own index", () => {
    const error = badConfig({
      ...MINIMAL,
      healthChecks: [
        { type: "command", argv: ["true"] },
        { type: "systemd", units: ["sshd.service"] },
        { type: "systemd", units: ["a b"] },
      ],
    });
    assert.match(error.message, /healthChecks\[0\] \(command:true\): argv\[0\] "true"/);
    assert.match(error.message, /healthChecks\[2\] \(systemd:a b\): "a b" is not a systemd unit name/);
    assert.doesNotMatch(error.message, /healthChecks\[1\]/);
  });

  test("non-objects are rejected with E_BAD_CONFIG", () => {
    for (const raw of [null, undefined, 42, "config", []]) badConfig(raw);
  });
});

describe("loadAgentConfig", () => {
  const dir = mkdtempSync(join(tmpdir(), "ferry-agent-config-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("reads a JSON file and applies overrides", () => {
    const file = join(dir, "agent.json");
    writeFileSync(file, JSON.stringify(MINIMAL));
    const config = loadAgentConfig(file, { stateDir: "/tmp/state" });
    assert.equal(config.stateDir, "/tmp/state");
    assert.equal(config.hostName, "web1");
  });

  test("a missing file → E_FILE_NOT_FOUND naming it", () => {
    const missing = join(dir, "missing.json");
    assert.throws(
      () => loadAgentConfig(missing),
      (error: unknown) => error instanceof FerryError && error.code === "E_FILE_NOT_FOUND" && error.message === `agent configuration ${missing} does not exist`,
    );
  });

  test("invalid JSON or a non-object → E_BAD_CONFIG naming the file", () => {
    const bad = join(dir, "bad.json");
    writeFileSync(bad, "{ not json");
    const list = join(dir, "list.json");
    writeFileSync(list, "[]");
    for (const file of [bad, list]) {
      assert.throws(
        () => loadAgentConfig(file),
        (error: unknown) => error instanceof FerryError && error.code === "E_BAD_CONFIG" && error.message.includes(file),
        file,
      );
    }
  });
});
