// A fleet where every connection runs over TLS with a CA made by openssl in
// the test: the CLI (gRPC), agents (wss), `nix copy` uploads and Nix
// substitution (https, against a private cache with each host's own token).
// Then what must be refused: another CA, an expired certificate, a name the
// certificate does not hold, an operator without a client certificate; and a
// certificate rotated by SIGHUP under connected agents.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import { connect as tlsConnect } from "node:tls";
import { Fleet } from "../harness/fleet.js";
import { ControllerProcess } from "../harness/controller-proc.js";
import { buildFixtureSystem } from "../harness/fixtures.js";
import { exec } from "../harness/exec.js";
import { ferry } from "../harness/ferry-cli.js";
import { allOnline, hostStatus } from "../harness/status.js";
import { everyGatewayAddress } from "../harness/sim-host.js";
import { TestCa, type IssuedCert } from "../harness/test-ca.js";

const root = process.getuid?.() !== 0 ? "needs root for network namespaces" : false;

describe("TLS everywhere, with a private cache", { skip: root }, () => {
  let fleet: Fleet;
  let ca: TestCa;
  let otherCa: TestCa;
  let good: IssuedCert;
  /** The files the controller reads; the tests overwrite them and send SIGHUP. */
  let served: IssuedCert;
  const systems: string[] = [];

  before(async () => {
    fleet = await Fleet.start("tls", async (dir) => {
      ca = await TestCa.create(join(dir, "pki"));
      otherCa = await TestCa.create(join(dir, "pki"), "other-ca");
      good = await ca.issueServer("controller", { ips: ["127.0.0.1", ...everyGatewayAddress()] });
      served = { certFile: join(dir, "pki", "served.crt"), keyFile: join(dir, "pki", "served.key") };
      copyFileSync(good.certFile, served.certFile);
      copyFileSync(good.keyFile, served.keyFile);
      return { controller: { tls: served, privateCache: true }, caFile: ca.certFile };
    });
    await fleet.addHost("web-1");
    systems.push(await buildFixtureSystem("web-1", 1), await buildFixtureSystem("web-1", 2));
    await fleet.push(systems);
    await allOnline(fleet);
  });

  after(async () => {
    await fleet?.close();
  });

  /** Serves another certificate from now on, as a renewal would. */
  async function rotate(to: IssuedCert): Promise<void> {
    copyFileSync(to.certFile, served.certFile);
    copyFileSync(to.keyFile, served.keyFile);
    await fleet.controller.reloadTls();
  }

  function servedSerial(port: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = tlsConnect({ host: "127.0.0.1", port, ca: readFileSync(ca.certFile), ALPNProtocols: ["h2", "http/1.1"] }, () => {
        resolve(socket.getPeerX509Certificate()?.serialNumber ?? "");
        socket.end();
      });
      socket.on("error", reject);
    });
  }

  function agentConnections(host: string): number {
    return fleet.controller
      .logText()
      .split("\n")
      .filter((line) => line.includes('"msg":"agent connected"') && line.includes(`"host":"${host}"`)).length;
  }

  test("the CLI, cache push (nix copy over https), the agent link (wss) and substitution (https) all run over TLS", async () => {
    assert.match(fleet.controller.address, /^https:\/\//);
    const config = JSON.parse(readFileSync(join(fleet.host("web-1").dir, "agent.json"), "utf8")) as { controllerUrl: string; substituters: string[] };
    assert.match(config.controllerUrl, /^wss:\/\//);
    assert.match(config.substituters[0] ?? "", /^https:\/\//);
    const result = await fleet.cli(["deploy", `web-1=${systems[0]}`, "--wait", "--timeout", "120", "--json"]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.equal(fleet.host("web-1").currentSystem(), systems[0]);
    // The agent signed in to the private cache with a netrc only root can read.
    assert.equal(statSync(join(fleet.host("web-1").stateDir, "cache.netrc")).mode & 0o777, 0o600);
  });

  test("bundle import over https: streamed in one pass, and file by file with --two-pass", async () => {
    writeFileSync(join(fleet.controller.dataDir, "bundle-trusted-keys"), `${fleet.key.publicKey}\n`);
    const bundles: string[] = [];
    for (const [name, generation] of [
      ["one", 3],
      ["two", 4],
    ] as const) {
      const manifest = join(fleet.dir, `${name}.hosts.json`);
      writeFileSync(manifest, JSON.stringify({ hosts: { "web-1": await buildFixtureSystem("web-1", generation) } }));
      const bundle = join(fleet.dir, `${name}.ferry`);
      await fleet.mustCli(["bundle", "create", "--manifest", manifest, "-o", bundle, "--signing-key-file", fleet.key.secretFile]);
      bundles.push(bundle);
    }
    for (const [bundle, extra] of [
      [bundles[0] as string, []],
      [bundles[1] as string, ["--two-pass"]],
    ] as const) {
      const imported = await fleet.cli(["bundle", "import", bundle, "--trusted-key", fleet.key.publicKey, "--json", ...extra]);
      assert.equal(imported.code, 0, imported.stdout + imported.stderr);
      assert.ok(imported.json<{ uploadedBytes: number }>().uploadedBytes > 0);
    }
  });

  test("private cache: no credentials or a wrong host token get 401, the host's own token gets the narinfo", async () => {
    const hash = (systems[1] as string).slice("/nix/store/".length, "/nix/store/".length + 32);
    const url = `https://127.0.0.1:${fleet.controller.httpPort}/cache/${hash}.narinfo`;
    const token = readFileSync(join(fleet.host("web-1").dir, "token"), "utf8").trim();
    const curl = async (...extra: string[]): Promise<string> =>
      (await exec(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", ca.certFile, ...extra, url])).stdout;
    assert.equal(await curl(), "401");
    assert.equal(await curl("-u", "web-1:not-the-token"), "401");
    assert.equal(await curl("-u", `web-1:${token}`), "200");
    assert.equal(await curl("-u", `ferry:${fleet.readAdminToken()}`), "200");
  });

  test("a CLI or an agent that trusts another CA is refused with E_TLS_UNTRUSTED", async () => {
    const cli = await ferry(["host", "list", "--json"], { ...fleet.env, FERRY_CA_FILE: otherCa.certFile });
    assert.equal(cli.code, 1);
    assert.equal(cli.json<{ error: { code: string } }>().error.code, "E_TLS_UNTRUSTED", cli.stdout);
    const stranger = await fleet.addHost("stranger", { agentConfig: { caFile: otherCa.certFile } });
    await stranger.waitForLog("TLS refusal", (event) => event["code"] === "E_TLS_UNTRUSTED");
    assert.equal((await hostStatus(fleet, "stranger")).online, false);
    await stranger.stopAgent();
  });

  test("a certificate rotated by SIGHUP reaches new connections while connected agents stay on their link", async () => {
    const connectionsBefore = agentConnections("web-1");
    const linkLost = (): number =>
      fleet
        .host("web-1")
        .agentLogText()
        .split("\n")
        .filter((line) => line.includes("lost the controller link")).length;
    const lostBefore = linkLost();
    const renewed = await ca.issueServer("controller", { ips: ["127.0.0.1", ...everyGatewayAddress()] });
    await rotate(renewed);
    const expected = new X509Certificate(readFileSync(renewed.certFile)).serialNumber;
    assert.equal(await servedSerial(fleet.controller.httpPort), expected, "https/wss listener serves the new certificate");
    assert.equal(await servedSerial(fleet.controller.grpcPort), expected, "gRPC listener serves the new certificate");
    // A deployment over the very same agent link, after the rotation.
    const result = await fleet.cli(["deploy", `web-1=${systems[1]}`, "--wait", "--timeout", "120"]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.equal(fleet.host("web-1").currentSystem(), systems[1]);
    assert.equal(agentConnections("web-1"), connectionsBefore, "the agent did not have to reconnect");
    assert.equal(linkLost(), lostBefore, "the agent never lost its link");
  });

  test("an expired certificate and one for another name are refused by the CLI, each with its code", async () => {
    try {
      await rotate(await ca.issueServer("controller", { ips: ["127.0.0.1", ...everyGatewayAddress()], days: -1 }));
      const expired = await fleet.cli(["host", "list", "--json"]);
      assert.equal(expired.code, 1);
      assert.equal(expired.json<{ error: { code: string } }>().error.code, "E_TLS_EXPIRED", expired.stdout);

      await rotate(await ca.issueServer("elsewhere", { dns: ["elsewhere.example"] }));
      const mismatch = await fleet.cli(["host", "list", "--json"]);
      assert.equal(mismatch.code, 1);
      assert.equal(mismatch.json<{ error: { code: string } }>().error.code, "E_TLS_NAME_MISMATCH", mismatch.stdout);
    } finally {
      await rotate(good);
    }
    assert.ok((await hostStatus(fleet, "web-1")).online, "the agent's link survived both bad certificates");
  });

  test("plaintext to a non-loopback controller is refused before anything is sent", async () => {
    const result = await ferry(["host", "list", "--json", "--controller", "10.231.250.1:7071"], { FERRY_TOKEN_FILE: fleet.controller.tokenFile });
    assert.equal(result.code, 1);
    assert.equal(result.json<{ error: { code: string } }>().error.code, "E_INSECURE_TRANSPORT");
  });

  test("--client-ca: an operator without a client certificate is refused, one with it gets in", async () => {
    const operator = await ca.issueClient("operator");
    const mtls = new ControllerProcess(join(fleet.dir, "mtls-controller"), { tls: { ...good, clientCaFile: ca.certFile } });
    await mtls.start();
    try {
      const env = { FERRY_CONTROLLER: mtls.address, FERRY_TOKEN_FILE: mtls.tokenFile, FERRY_CA_FILE: ca.certFile };
      const refused = await ferry(["host", "list", "--json"], env);
      assert.equal(refused.code, 1);
      assert.equal(refused.json<{ error: { code: string } }>().error.code, "E_TLS_CLIENT_CERT", refused.stdout);
      const admitted = await ferry(["host", "list", "--json"], { ...env, FERRY_CLIENT_CERT: operator.certFile, FERRY_CLIENT_KEY: operator.keyFile });
      assert.equal(admitted.code, 0, admitted.stdout + admitted.stderr);
    } finally {
      await mtls.stop();
    }
  });
});
