// HTTP health checks against real servers on loopback: what passes, what
// fails and how it is named, bounded bodies and timeouts, and the check under
// --lite-mode, the V8 mode the resident agent runs in (no WebAssembly).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { ProcessRunner } from "@ferry/core";
import { HTTP_CHECK_BODY_BYTES, runHealthChecks } from "../src/health-checks.js";
import type { HttpCheck } from "../src/config.js";

const BIG_BODY_BYTES = 8 * HTTP_CHECK_BODY_BYTES;

let server: Server;
let base = "";

before(async () => {
  server = createServer((request, response) => {
    switch (request.url) {
      case "/ok":
        response.end("status: ok");
        return;
      case "/broken":
        response.writeHead(500).end("status: broken");
        return;
      case "/big":
        // The marker sits after the bytes a check reads.
        response.write(Buffer.alloc(BIG_BODY_BYTES, "x"));
        response.end("marker");
        return;
      case "/cut":
        response.writeHead(200, { "content-length": "1000" });
        response.write("partial");
        setTimeout(() => response.socket?.destroy(), 50);
        return;
      case "/silent":
        // Never answers: the check's timeout ends it.
        return;
    }
    response.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => {
  server.closeAllConnections();
  server.close();
});

function check(path: string, extra: Partial<HttpCheck> = {}): HttpCheck {
  return { type: "http", url: `${base}${path}`, expectStatus: 200, timeout: 2, strict: false, ...extra };
}

async function one(path: string, extra: Partial<HttpCheck> = {}): Promise<{ passed: boolean; detail: string }> {
  const [outcome] = await runHealthChecks([check(path, extra)], new ProcessRunner());
  assert.ok(outcome);
  return outcome;
}

describe("HTTP health checks", () => {
  test("the expected status and body pass; another status or a missing text fail, named", async () => {
    assert.deepEqual(await one("/ok", { bodyContains: "ok" }), { name: `http:${base}/ok`, passed: true, detail: "HTTP 200" });
    assert.deepEqual(await one("/broken"), { name: `http:${base}/broken`, passed: false, detail: "HTTP 500" });
    assert.equal((await one("/broken", { expectStatus: 500 })).passed, true);
    const missing = await one("/ok", { bodyContains: "healthy" });
    assert.equal(missing.passed, false);
    assert.equal(missing.detail, 'HTTP 200, body lacks "healthy"');
  });

  test("only the first MiB of a body is searched, and the rest is not kept", async () => {
    const outcome = await one("/big", { bodyContains: "marker" });
    assert.equal(outcome.passed, false);
    assert.equal(outcome.detail, `HTTP 200, first ${HTTP_CHECK_BODY_BYTES} bytes of the body lack "marker"`);
    assert.equal((await one("/big", { bodyContains: "xxxx" })).passed, true);
  });

  test("a server that never answers fails the check at its timeout", async () => {
    const started = Date.now();
    const outcome = await one("/silent", { timeout: 0.3 });
    assert.equal(outcome.passed, false);
    assert.match(outcome.detail, /no complete answer within 0\.3 s/);
    assert.ok(Date.now() - started < 5_000, "the timeout bounds the check");
  });

  test("a connection cut in the middle of the body fails the check", async () => {
    const outcome = await one("/cut", { bodyContains: "partial" });
    assert.equal(outcome.passed, false);
    assert.match(outcome.detail, /closed before the whole answer|aborted|socket hang up/);
  });

  test("nothing listening fails the check with the connection error", async () => {
    const outcome = await runHealthChecks([{ ...check("/ok"), url: "http://127.0.0.1:1/" }], new ProcessRunner());
    assert.equal(outcome[0]?.passed, false);
    assert.match(outcome[0]?.detail ?? "", /ECONNREFUSED/);
  });

  test("an HTTP check passes in a process under --lite-mode, as ferry-agent runs", { timeout: 30_000 }, async () => {
    const healthChecks = fileURLToPath(new URL("../dist/health-checks.js", import.meta.url));
    const core = fileURLToPath(new URL("../../core/dist/index.js", import.meta.url));
    const script = `
      const { runHealthChecks } = await import(${JSON.stringify(healthChecks)});
      const { ProcessRunner } = await import(${JSON.stringify(core)});
      const [outcome] = await runHealthChecks([${JSON.stringify(check("/ok", { bodyContains: "ok" }))}], new ProcessRunner());
      process.stdout.write(JSON.stringify(outcome));
    `;
    // Asynchronously: the server the check asks runs in this process.
    const child = await promisify(execFile)(process.execPath, ["--lite-mode", "--no-expose-wasm", "--input-type=module", "-e", script], { timeout: 25_000 });
    assert.deepEqual(JSON.parse(child.stdout), { name: `http:${base}/ok`, passed: true, detail: "HTTP 200" });
  });
});
