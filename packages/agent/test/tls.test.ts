// The agent's side of TLS and of the private cache: which URLs it refuses,
// the netrc it writes, how it names a refused fetch, and its wss link with a
// CA and a client certificate, against a real controller on loopback.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { FerryError, hashToken, silentLogger, type Logger } from "@ferry/core";
import { startController, type RunningController } from "@ferry/controller";
import { compileAgentConfig, parseAgentConfig, requireControllerSettings, type AgentConfig, type AgentSettings } from "@ferry/agent";
import { cacheTransport, diagnoseSubstituters } from "../src/cache-transport.js";
import { ControllerLink } from "../src/controller-link.js";
import { TestCa, type IssuedCert } from "../../../test/harness/test-ca.js";

const TOKEN = "agent-tls-token-0123456789abcdef0123456789abcdef";
const STORE_PATH = "/nix/store/0c3dmvwbxf9zhql7xv30hwzbhzb2nm3w-nixos-system-web1-1";
const BASE = {
  hostName: "web1",
  trustedPublicKeys: ["ferry-1:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="],
};

function refusedWith(raw: Record<string, unknown>, code: string, pattern: RegExp): void {
  assert.throws(
    () => parseAgentConfig({ ...BASE, tokenFile: "/run/token", ...raw }),
    (error: unknown) => error instanceof FerryError && error.code === code && pattern.test(error.message),
  );
}

describe("agent configuration: transport", () => {
  test("ws:// and http:// to a non-loopback address are refused with E_INSECURE_TRANSPORT", () => {
    refusedWith(
      { controllerUrl: "ws://10.0.0.1:7070/agent", substituters: ["https://10.0.0.1:7070/cache"] },
      "E_INSECURE_TRANSPORT",
      /controllerUrl.*allowInsecureTransport/,
    );
    refusedWith(
      { controllerUrl: "wss://ctl.example/agent", substituters: ["http://ctl.example/cache"] },
      "E_INSECURE_TRANSPORT",
      /substituter http:\/\/ctl\.example/,
    );
  });

  test("TLS anywhere, plaintext to loopback, and plaintext when explicitly allowed are accepted", () => {
    for (const raw of [
      { controllerUrl: "wss://ctl.example/agent", substituters: ["https://ctl.example/cache", "file:///srv/cache"] },
      { controllerUrl: "ws://127.0.0.1:7070/agent", substituters: ["http://localhost:7070/cache"] },
      { controllerUrl: "ws://[::1]:7070/agent", substituters: ["http://[::1]:7070/cache"] },
      { controllerUrl: "ws://10.0.0.1:7070/agent", substituters: ["http://10.0.0.1:7070/cache"], allowInsecureTransport: true },
    ]) {
      assert.doesNotThrow(() => parseAgentConfig({ ...BASE, tokenFile: "/run/token", ...raw }), JSON.stringify(raw));
    }
  });

  test("a client certificate needs its key", () => {
    refusedWith(
      { controllerUrl: "wss://c/agent", substituters: ["https://c/cache"], tlsCertFile: "/etc/agent.crt" },
      "E_BAD_CONFIG",
      /tlsCertFile and tlsKeyFile/,
    );
  });
});

let dir: string;
let ca: TestCa;
let otherCa: TestCa;
let server: IssuedCert;
let agentCert: IssuedCert;
let controller: RunningController;
let tokenFile: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "ferry-agent-tls-"));
  ca = await TestCa.create(join(dir, "pki"));
  otherCa = await TestCa.create(join(dir, "pki"), "other-ca");
  server = await ca.issueServer("controller", { ips: ["127.0.0.1"] });
  agentCert = await ca.issueClient("web1");
  tokenFile = join(dir, "token");
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  controller = await startController({
    dataDir: join(dir, "data"),
    listen: { host: "127.0.0.1", port: 0 },
    grpcListen: { host: "127.0.0.1", port: 0 },
    log: silentLogger(),
    tls: { certFile: server.certFile, keyFile: server.keyFile, agentClientCaFile: ca.certFile },
    privateCache: true,
  });
  await controller.store.addHost("web1", hashToken(TOKEN), [], Date.now());
});
after(async () => {
  await controller.stop();
  rmSync(dir, { recursive: true, force: true });
});

function config(overrides: Record<string, unknown> = {}): AgentConfig {
  const port = controller.httpPort;
  return parseAgentConfig({
    ...BASE,
    controllerUrl: `wss://127.0.0.1:${port}/agent`,
    substituters: [`https://127.0.0.1:${port}/cache`, "https://cache.example.org"],
    tokenFile,
    stateDir: join(dir, "state"),
    caFile: ca.certFile,
    ...overrides,
  });
}

function settings(overrides: Record<string, unknown> = {}): AgentSettings {
  return compileAgentConfig(config(overrides));
}

describe("cache credentials", () => {
  test("the netrc is 0600 and names only the controller's host, with this host's name and token", () => {
    const transport = cacheTransport(settings());
    assert.equal(transport.caFile, ca.certFile);
    assert.ok(transport.netrcFile);
    assert.equal(statSync(transport.netrcFile).mode & 0o777, 0o600);
    assert.equal(readFileSync(transport.netrcFile, "utf8"), `machine 127.0.0.1 login web1 password ${TOKEN}\n`);
  });

  test("with several controllers, a substituter on any of their hosts gets the credentials, a third-party one still not", () => {
    const transport = cacheTransport(
      settings({
        controllerUrl: undefined,
        controllerUrls: ["wss://ctl-b.example/agent", `wss://127.0.0.1:${controller.httpPort}/agent`],
        substituters: ["https://ctl-b.example/cache", `https://127.0.0.1:${controller.httpPort}/cache`, "https://cache.example.org"],
      }),
    );
    assert.ok(transport.netrcFile);
    assert.equal(
      readFileSync(transport.netrcFile, "utf8"),
      `machine ctl-b.example login web1 password ${TOKEN}\nmachine 127.0.0.1 login web1 password ${TOKEN}\n`,
    );
  });

  test("no substituter on the controller's host: no netrc, the token stays home", () => {
    const transport = cacheTransport(settings({ substituters: ["https://cache.example.org"] }));
    assert.equal(transport.netrcFile, undefined);
  });

  test("a fetch that failed is explained: credentials refused, certificate untrusted, or nothing to add", async () => {
    assert.equal(await diagnoseSubstituters(settings({ substituters: [`https://127.0.0.1:${controller.httpPort}/cache`] }), STORE_PATH), undefined);
    const wrongToken = join(dir, "wrong-token");
    writeFileSync(wrongToken, "not-the-token\n");
    const refused = await diagnoseSubstituters(
      settings({ substituters: [`https://127.0.0.1:${controller.httpPort}/cache`], tokenFile: wrongToken }),
      STORE_PATH,
    );
    assert.equal(refused?.code, "E_CACHE_AUTH");
    const untrusted = await diagnoseSubstituters(
      settings({ substituters: [`https://127.0.0.1:${controller.httpPort}/cache`], caFile: otherCa.certFile }),
      STORE_PATH,
    );
    assert.equal(untrusted?.code, "E_TLS_UNTRUSTED");
  });
});

/** A logger whose events the test can read. */
function recordingLogger(): { log: Logger; events: Record<string, unknown>[] } {
  const events: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n").filter(Boolean)) events.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: "debug" }, sink), events };
}

async function linkOutcome(overrides: Record<string, unknown>): Promise<{ connected: boolean; codes: unknown[] }> {
  const agent = requireControllerSettings(config(overrides));
  const { log, events } = recordingLogger();
  const link = new ControllerLink({
    urls: compileAgentConfig(agent).controllerUrls,
    hostName: agent.hostName,
    tokenFile: agent.tokenFile,
    tls: { caFile: agent.caFile, certFile: agent.tlsCertFile, keyFile: agent.tlsKeyFile },
    agentVersion: "test",
    heartbeatIntervalMs: 1000,
    reconnectMaxDelayMs: 60_000,
    log,
    hello: () => ({ currentSystem: "", appliedSerial: 0, phase: 0 }),
  });
  const connected = new Promise<boolean>((resolve) => {
    link.once("connected", () => resolve(true));
    setTimeout(() => resolve(false), 1500);
  });
  link.start();
  const outcome = await connected;
  link.stop();
  return { connected: outcome, codes: events.map((event) => event["code"]).filter(Boolean) };
}

describe("the agent link over wss", () => {
  test("with the CA and a client certificate the agent is welcomed", async () => {
    const outcome = await linkOutcome({ tlsCertFile: agentCert.certFile, tlsKeyFile: agentCert.keyFile });
    assert.equal(outcome.connected, true);
  });

  test("without a client certificate the controller refuses it and the agent logs E_TLS_CLIENT_CERT", async () => {
    const outcome = await linkOutcome({});
    assert.equal(outcome.connected, false);
    assert.ok(outcome.codes.includes("E_TLS_CLIENT_CERT"), JSON.stringify(outcome.codes));
  });

  test("trusting another CA, the agent refuses the controller and logs E_TLS_UNTRUSTED", async () => {
    const outcome = await linkOutcome({ caFile: otherCa.certFile, tlsCertFile: agentCert.certFile, tlsKeyFile: agentCert.keyFile });
    assert.equal(outcome.connected, false);
    assert.ok(outcome.codes.includes("E_TLS_UNTRUSTED"), JSON.stringify(outcome.codes));
  });
});
