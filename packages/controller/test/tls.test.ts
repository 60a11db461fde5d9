// The controller with TLS, in this process, on loopback: https/wss and gRPC
// over TLS with a CA made by openssl, certificate reload without dropping
// agents, client certificates for operators and agents, and the private cache.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import { connect as tlsConnect } from "node:tls";
import WebSocket from "ws";
import { Metadata, credentials, type ChannelCredentials, type ServiceError } from "@grpc/grpc-js";
import { classifyTlsFailure, hashToken, silentLogger } from "@ferry/core";
import { startController, type EdgeLimits, type RunningController } from "@ferry/controller";
import { HostPhase, OperatorServiceClient, decodeControllerFrame, encodeAgentFrame, type GetInfoResponse } from "@ferry/protocol";
import { TestCa, type IssuedCert } from "../../../test/harness/test-ca.js";

const HOST_TOKEN = "tls-host-token-0123456789abcdef0123456789abcdef";
const OTHER_TOKEN = "tls-other-token-0123456789abcdef0123456789abcdef";

let dir: string;
let ca: TestCa;
let otherCa: TestCa;
let server: IssuedCert;
let operator: IssuedCert;
let agentCert: IssuedCert;
/** The files the controller reads: overwritten to rotate. */
let certFile: string;
let keyFile: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "ferry-tls-unit-"));
  ca = await TestCa.create(join(dir, "ca"));
  otherCa = await TestCa.create(join(dir, "ca"), "other-ca");
  server = await ca.issueServer("controller", { ips: ["127.0.0.1"], dns: ["localhost"] });
  operator = await ca.issueClient("operator");
  agentCert = await ca.issueClient("web1");
  certFile = join(dir, "server.crt");
  keyFile = join(dir, "server.key");
  copyFileSync(server.certFile, certFile);
  copyFileSync(server.keyFile, keyFile);
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function start(
  options: { clientCa?: boolean; agentClientCa?: boolean; privateCache?: boolean; edgeLimits?: Partial<EdgeLimits> } = {},
): Promise<{ controller: RunningController; adminToken: string }> {
  const dataDir = mkdtempSync(join(dir, "data-"));
  const controller = await startController({
    dataDir,
    listen: { host: "127.0.0.1", port: 0 },
    grpcListen: { host: "127.0.0.1", port: 0 },
    log: silentLogger(),
    heartbeatIntervalMs: 1000,
    tls: {
      certFile,
      keyFile,
      ...(options.clientCa ? { clientCaFile: ca.certFile } : {}),
      ...(options.agentClientCa ? { agentClientCaFile: ca.certFile } : {}),
    },
    privateCache: options.privateCache ?? false,
    ...(options.edgeLimits ? { edgeLimits: options.edgeLimits } : {}),
  });
  await controller.store.addHost("web1", hashToken(HOST_TOKEN), [], Date.now());
  await controller.store.addHost("web2", hashToken(OTHER_TOKEN), [], Date.now());
  return { controller, adminToken: readFileSync(join(dataDir, "admin.token"), "utf8").trim() };
}

function getInfo(port: number, creds: ChannelCredentials, token: string): Promise<GetInfoResponse> {
  const client = new OperatorServiceClient(`127.0.0.1:${port}`, creds);
  const metadata = new Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  return new Promise<GetInfoResponse>((resolve, reject) =>
    client.getInfo({}, metadata, { deadline: new Date(Date.now() + 5000) }, (error: ServiceError | null, response: GetInfoResponse) =>
      error ? reject(error) : resolve(response),
    ),
  ).finally(() => client.close());
}

function get(port: number, path: string, headers: Record<string, string> = {}, trust = ca.certFile): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = httpsRequest({ host: "127.0.0.1", port, path, headers, ca: readFileSync(trust), agent: false }, (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => (body += chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on("error", reject);
    request.end();
  });
}

/** The serial number of the certificate the listener presents to a new connection. */
function servedSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: "127.0.0.1", port, ca: readFileSync(ca.certFile), servername: "localhost" }, () => {
      resolve(socket.getPeerX509Certificate()?.serialNumber ?? "");
      socket.end();
    });
    socket.on("error", reject);
  });
}

function basic(login: string, password: string): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`${login}:${password}`).toString("base64")}` };
}

/** An agent link over wss that says hello as web1; resolves with the socket once welcomed. */
async function agentLink(port: number, tls: { cert?: string; key?: string } = {}, as = { hostName: "web1", token: HOST_TOKEN }): Promise<WebSocket> {
  const ws = new WebSocket(`wss://127.0.0.1:${port}/agent`, {
    perMessageDeflate: false,
    ca: readFileSync(ca.certFile),
    ...(tls.cert && tls.key ? { cert: readFileSync(tls.cert), key: readFileSync(tls.key) } : {}),
  });
  const refused = new Promise<never>((_, reject) => {
    ws.on("unexpected-response", (_request, response) => reject(new Error(`refused ${response.statusCode} ${String(response.headers["x-ferry-error-code"])}`)));
    ws.on("error", reject);
  });
  await Promise.race([new Promise((resolve) => ws.once("open", resolve)), refused]);
  const first = new Promise<string>((resolve) => ws.once("message", (data) => resolve(decodeControllerFrame(Buffer.from(data as Buffer)).body.$case)));
  ws.send(
    encodeAgentFrame({
      $case: "hello",
      value: { ...as, currentSystem: "", appliedSerial: 0, phase: HostPhase.HOST_PHASE_UNSPECIFIED, agentVersion: "test" },
    } as Parameters<typeof encodeAgentFrame>[0]),
    { binary: true },
  );
  assert.equal(await first, "welcome");
  return ws;
}

describe("controller TLS", () => {
  test("serves https, wss and gRPC over TLS with the configured certificate", async () => {
    const { controller, adminToken } = await start();
    try {
      assert.equal((await get(controller.httpPort, "/cache/nix-cache-info")).status, 200);
      const info = await getInfo(controller.grpcPort, credentials.createSsl(readFileSync(ca.certFile)), adminToken);
      assert.equal(info.tls, true, "GetInfo tells clients to use https for the cache");
      const ws = await agentLink(controller.httpPort);
      ws.terminate();
    } finally {
      await controller.stop();
    }
  });

  test("a client trusting another CA is refused, and the failure is classified", async () => {
    const { controller, adminToken } = await start();
    try {
      await assert.rejects(get(controller.httpPort, "/cache/nix-cache-info", {}, otherCa.certFile), (error: Error) => {
        assert.equal(classifyTlsFailure(error), "E_TLS_UNTRUSTED", error.message);
        return true;
      });
      await assert.rejects(getInfo(controller.grpcPort, credentials.createSsl(readFileSync(otherCa.certFile)), adminToken), (error: ServiceError) => {
        assert.equal(classifyTlsFailure(error.details), "E_TLS_UNTRUSTED", error.details);
        return true;
      });
      await assert.rejects(getInfo(controller.grpcPort, credentials.createInsecure(), adminToken), "a plaintext client gets nothing from a TLS port");
    } finally {
      await controller.stop();
    }
  });

  test("reload serves a new certificate to new connections and keeps the open agent link", async () => {
    const { controller, adminToken } = await start();
    try {
      const before = await servedSerial(controller.httpPort);
      const ws = await agentLink(controller.httpPort);
      let closed = false;
      ws.on("close", () => (closed = true));
      const renewed = await ca.issueServer("controller", { ips: ["127.0.0.1"], dns: ["localhost"] });
      copyFileSync(renewed.certFile, certFile);
      copyFileSync(renewed.keyFile, keyFile);
      controller.reloadTls();
      const expected = new X509Certificate(readFileSync(renewed.certFile)).serialNumber;
      assert.notEqual(before, expected);
      assert.equal(await servedSerial(controller.httpPort), expected, "new https connections get the new certificate");
      assert.equal(await servedSerial(controller.grpcPort), expected, "new gRPC connections get the new certificate");
      assert.ok((await getInfo(controller.grpcPort, credentials.createSsl(readFileSync(ca.certFile)), adminToken)).tls);
      // The agent's link was negotiated before the reload and stays up: a heartbeat still gets its answer.
      const ack = new Promise<string>((resolve) => ws.once("message", (data) => resolve(decodeControllerFrame(Buffer.from(data as Buffer)).body.$case)));
      ws.send(encodeAgentFrame({ $case: "heartbeat", value: { sequence: 1, sentAtMs: Date.now(), currentSystem: "", phase: 0 } }), { binary: true });
      assert.equal(await ack, "heartbeatAck");
      assert.equal(closed, false);
      ws.terminate();
    } finally {
      copyFileSync(server.certFile, certFile);
      copyFileSync(server.keyFile, keyFile);
      await controller.stop();
    }
  });

  test("agents authenticated over TLS leave the unauthenticated connection budget", async () => {
    // Two pending sockets per address at most: a third link is admitted only if the first two were counted out once welcomed.
    const { controller } = await start({ edgeLimits: { maxPendingPerAddress: 2 } });
    try {
      const links = [
        await agentLink(controller.httpPort, {}, { hostName: "web1", token: HOST_TOKEN }),
        await agentLink(controller.httpPort, {}, { hostName: "web2", token: OTHER_TOKEN }),
      ];
      const third = await agentLink(controller.httpPort, {}, { hostName: "web1", token: HOST_TOKEN });
      for (const ws of [...links, third]) ws.terminate();
    } finally {
      await controller.stop();
    }
  });

  test("a reload with a broken key keeps the certificates in use", async () => {
    const { controller } = await start();
    try {
      const before = await servedSerial(controller.httpPort);
      copyFileSync(otherCa.certFile, keyFile);
      assert.throws(() => controller.reloadTls(), { code: "E_TLS_MATERIAL" });
      assert.equal(await servedSerial(controller.httpPort), before);
    } finally {
      copyFileSync(server.keyFile, keyFile);
      await controller.stop();
    }
  });

  test("--client-ca: an operator without a client certificate is refused, one with it gets in", async () => {
    const { controller, adminToken } = await start({ clientCa: true });
    try {
      await assert.rejects(getInfo(controller.grpcPort, credentials.createSsl(readFileSync(ca.certFile)), adminToken), (error: ServiceError) => {
        assert.equal(classifyTlsFailure(error.details), "E_TLS_CLIENT_CERT", error.details);
        return true;
      });
      const withCert = credentials.createSsl(readFileSync(ca.certFile), readFileSync(operator.keyFile), readFileSync(operator.certFile));
      assert.ok((await getInfo(controller.grpcPort, withCert, adminToken)).tls);
      // The cache port does not ask operators for a certificate: Nix cannot present one.
      assert.equal((await get(controller.httpPort, "/cache/nix-cache-info")).status, 200);
    } finally {
      await controller.stop();
    }
  });

  test("--agent-client-ca: the agent endpoint needs a certificate; the cache does not", async () => {
    const { controller } = await start({ agentClientCa: true });
    try {
      await assert.rejects(agentLink(controller.httpPort), /refused 403 E_TLS_CLIENT_CERT/);
      const ws = await agentLink(controller.httpPort, { cert: agentCert.certFile, key: agentCert.keyFile });
      ws.terminate();
      assert.equal((await get(controller.httpPort, "/cache/nix-cache-info")).status, 200);
    } finally {
      await controller.stop();
    }
  });
});

describe("private cache", () => {
  let controller: RunningController;
  let adminToken: string;
  const narinfo = `/cache/${"0".repeat(32)}.narinfo`;

  before(async () => ({ controller, adminToken } = await start({ privateCache: true })));
  after(() => controller.stop());

  test("reads without credentials are refused with 401; nix-cache-info stays public", async () => {
    const refused = await get(controller.httpPort, narinfo);
    assert.equal(refused.status, 401);
    assert.match(refused.body, /E_CACHE_AUTH/);
    assert.equal((await get(controller.httpPort, `/cache/nar/${"0".repeat(52)}.nar.xz`)).status, 401);
    assert.equal((await get(controller.httpPort, "/cache/nix-cache-info")).status, 200);
  });

  test("a host reads with its name and token, the operator with the operator token", async () => {
    // 404: authenticated, and the file simply is not there.
    assert.equal((await get(controller.httpPort, narinfo, basic("web1", HOST_TOKEN))).status, 404);
    assert.equal((await get(controller.httpPort, narinfo, basic("ferry", adminToken))).status, 404);
    assert.equal((await get(controller.httpPort, narinfo, { authorization: `Bearer ${adminToken}` })).status, 404);
  });

  test("a wrong token, another host's token or an unknown host is refused", async () => {
    assert.equal((await get(controller.httpPort, narinfo, basic("web1", "wrong"))).status, 401);
    assert.equal((await get(controller.httpPort, narinfo, basic("web1", OTHER_TOKEN))).status, 401);
    assert.equal((await get(controller.httpPort, narinfo, basic("nosuchhost", HOST_TOKEN))).status, 401);
    assert.equal((await get(controller.httpPort, narinfo, { authorization: `Bearer ${HOST_TOKEN}` })).status, 401);
  });
});
