import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startTestController, type TestController } from "./controller-fixture.js";

const HASH = "pz5wv3mkbf4bwihvsz8yqydfwb9bfhy5";
const OTHER_HASH = "1zy01hjzwvvia6h9dq5xar88v77fgh9x";
const NAR = "nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar";
const narinfo = (hash: string, url: string): string =>
  [
    `StorePath: /nix/store/${hash}-hello`,
    `URL: ${url}`,
    "Compression: none",
    "NarHash: sha256:0dkpq4ayyk5lq5w4nqyyyzcsjy9fwz3b9d8y8pr3nvb0jkrk5yk7",
    "NarSize: 5",
    "References: ",
    "",
  ].join("\n");

let t: TestController;
before(async () => {
  t = await startTestController();
});
after(async () => {
  await t.stop();
});

const basic = (token: string): string => `Basic ${Buffer.from(`ferry:${token}`).toString("base64")}`;
const timeout = (): AbortSignal => AbortSignal.timeout(5000);
function put(path: string, body: string | Uint8Array, auth?: string): Promise<Response> {
  return fetch(`${t.baseUrl}/cache/${path}`, { method: "PUT", body, headers: auth ? { authorization: auth } : {}, signal: timeout() });
}
function get(path: string, method = "GET"): Promise<Response> {
  return fetch(`${t.baseUrl}/cache/${path}`, { method, signal: timeout() });
}
/** No upload temp files may be left in the cache directory. */
function assertNoTempFiles(): void {
  const dir = join(t.dataDir, "cache");
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.startsWith(".")),
    [],
  );
}

describe("binary cache over HTTP", () => {
  test("GET /cache/nix-cache-info", async () => {
    const response = await get("nix-cache-info");
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/x-nix-cache-info");
    const text = await response.text();
    assert.match(text, /^StoreDir: \/nix\/store$/m);
    assert.match(text, /^WantMassQuery: 1$/m);
    assert.equal((await get("nix-cache-info", "HEAD")).status, 200);
  });

  test("uploads need the operator token", async () => {
    for (const auth of [undefined, basic("wrong"), basic(""), "Bearer wrong", `Basic ${Buffer.from(t.adminToken).toString("base64")}`, t.adminToken]) {
      const response = await put(NAR, "bytes", auth);
      assert.equal(response.status, 401, String(auth));
      await response.arrayBuffer();
    }
    assert.equal((await get(NAR)).status, 404);
    assertNoTempFiles();
  });

  test("a NAR with Basic auth → 201, a narinfo for it → 201, both served back byte for byte", async () => {
    const nar = randomBytes(4096);
    assert.equal((await put(NAR, nar, basic(t.adminToken))).status, 201);
    const info = narinfo(HASH, NAR);
    assert.equal((await put(`${HASH}.narinfo`, info, basic(t.adminToken))).status, 201);

    const narBack = await get(NAR);
    assert.equal(narBack.status, 200);
    assert.equal(narBack.headers.get("content-type"), "application/x-nix-nar");
    assert.deepEqual(Buffer.from(await narBack.arrayBuffer()), nar);
    const infoBack = await get(`${HASH}.narinfo`);
    assert.equal(infoBack.status, 200);
    assert.equal(infoBack.headers.get("content-type"), "text/x-nix-narinfo");
    assert.equal(await infoBack.text(), info);
    const head = await get(`${HASH}.narinfo`, "HEAD");
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), String(Buffer.byteLength(info)));
    assertNoTempFiles();
  });

  test("Bearer auth works too, and a re-upload replaces the file", async () => {
    const path = "nar/0000000000000000000000000000000000000000000000000000.nar.xz";
    assert.equal((await put(path, "one", `Bearer ${t.adminToken}`)).status, 201);
    assert.equal((await put(path, "two", `Bearer ${t.adminToken}`)).status, 201);
    assert.equal(await (await get(path)).text(), "two");
  });

  test("a narinfo whose NAR was not uploaded → 400, and nothing is stored", async () => {
    const missing = "nar/1111111111111111111111111111111111111111111111111111.nar.xz";
    const response = await put(`${OTHER_HASH}.narinfo`, narinfo(OTHER_HASH, missing), basic(t.adminToken));
    assert.equal(response.status, 400);
    assert.match(await response.text(), /not uploaded/);
    assert.equal((await get(`${OTHER_HASH}.narinfo`)).status, 404);
    assertNoTempFiles();
  });

  test("a narinfo whose URL is outside nar/ → 400", async () => {
    for (const url of ["../admin.token", "nar/../../admin.token", "/etc/passwd", "state.sqlite"]) {
      const response = await put(`${OTHER_HASH}.narinfo`, narinfo(OTHER_HASH, url), basic(t.adminToken));
      assert.equal(response.status, 400, url);
      await response.arrayBuffer();
    }
  });

  test("a narinfo whose StorePath hash differs from its file name → 400", async () => {
    const response = await put(`${OTHER_HASH}.narinfo`, narinfo(HASH, NAR), basic(t.adminToken));
    assert.equal(response.status, 400);
    assert.match(await response.text(), /uploaded as/);
    assert.equal((await get(`${OTHER_HASH}.narinfo`)).status, 404);
  });

  test("malformed or oversized narinfo → 400", async () => {
    assert.equal((await put(`${OTHER_HASH}.narinfo`, "this is not a narinfo", basic(t.adminToken))).status, 400);
    const huge = narinfo(OTHER_HASH, NAR) + `Sig: x:${"A".repeat(70 * 1024)}\n`;
    const response = await put(`${OTHER_HASH}.narinfo`, huge, basic(t.adminToken)).catch((error: unknown) => error);
    // The server may answer 400 or cut the connection while the body is still being sent.
    if (response instanceof Response) assert.equal(response.status, 400);
    assert.equal((await get(`${OTHER_HASH}.narinfo`)).status, 404);
    assertNoTempFiles();
  });

  test("uploads to names outside the cache layout are refused", async () => {
    for (const name of [
      "..%2Fx",
      "foo.txt",
      "..%2Fadmin.token",
      "nar%2F..%2F..%2Fstate.sqlite",
      "nix-cache-info",
      `${HASH}.narinfo.bak`,
      "nar/short.nar",
      `nar%2F${"a".repeat(52)}.nar%2F..%2F..%2Fx`,
      "log/x",
    ]) {
      const response = await put(name, "x", basic(t.adminToken));
      assert.ok(response.status === 403 || response.status === 404, `${name}: ${response.status}`);
      await response.arrayBuffer();
    }
    assert.equal(existsSync(join(t.dataDir, "x")), false);
    assert.equal(existsSync(join(t.dataDir, "cache", "foo.txt")), false);
    assertNoTempFiles();
  });

  test("reads outside the cache layout are 404, never a file of the data dir", async () => {
    for (const name of ["..%2Fadmin.token", "..%2Fstate.sqlite", "nar%2F..%2F..%2Fadmin.token", "", "nar", "nar/", "%2Fetc%2Fpasswd"]) {
      const response = await get(name);
      assert.equal(response.status, 404, name);
      assert.ok(!(await response.text()).includes(t.adminToken));
    }
  });

  test("other methods → 405", async () => {
    const response = await fetch(`${t.baseUrl}/cache/${NAR}`, { method: "DELETE", headers: { authorization: basic(t.adminToken) }, signal: timeout() });
    assert.equal(response.status, 405);
  });
});

describe("binary cache robustness", () => {
  test("a malformed percent-encoding in a cache URL does not kill the controller", async () => {
    // In a child process: an uncaught exception there must not take this test process down.
    const root = fileURLToPath(new URL("../../../", import.meta.url));
    const script = `
        import { mkdtempSync, rmSync } from "node:fs"; import { tmpdir } from "node:os"; import { join } from "node:path";
        import { silentLogger } from "@ferry/core"; import { startController } from "@ferry/controller";
        const dataDir = mkdtempSync(join(tmpdir(), "ferry-crash-"));
        process.on("exit", () => rmSync(dataDir, { recursive: true, force: true }));
        const c = await startController({ dataDir, listen: { host: "127.0.0.1", port: 0 }, grpcListen: { host: "127.0.0.1", port: 0 }, log: silentLogger() });
        console.log(c.httpPort);
        process.stdin.on("end", () => c.stop().then(() => process.exit(0))); process.stdin.resume();`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], { cwd: root, stdio: ["pipe", "pipe", "ignore"] });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        child.stdout.once("data", (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
        child.once("exit", () => reject(new Error("controller child exited before listening")));
        setTimeout(() => reject(new Error("controller child did not start")), 10_000).unref();
      });
      await fetch(`http://127.0.0.1:${port}/cache/%ZZ`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
      const health = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2000) }).catch((error: unknown) => error);
      assert.ok(health instanceof Response && health.status === 200, `controller died: ${String(health)}`);
    } finally {
      child.stdin.end();
      if (child.exitCode === null) child.kill();
    }
  });
});

/** Nix (2.8+) present and usable: the real round trip below needs it. */
function nixAvailable(): boolean {
  try {
    execFileSync("nix-store", ["--version"], { stdio: "ignore", timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

describe("binary cache with real Nix", { skip: nixAvailable() ? false : "nix not installed" }, () => {
  test("nix copy --to the controller uploads a path whose narinfo then names it", { timeout: 60_000 }, async () => {
    const salt = randomBytes(8).toString("hex");
    const expr = `derivation { name = "ferry-cache-test"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo hi > $out" ]; salt = "${salt}"; }`;
    // No substituters: nothing leaves the machine.
    const path = execFileSync("nix-build", ["-E", expr, "--no-out-link", "--option", "substituters", ""], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 30_000,
    }).trim();
    assert.match(path, /^\/nix\/store\/[0-9a-z]{32}-ferry-cache-test$/);
    const hash = path.slice("/nix/store/".length, "/nix/store/".length + 32);

    const netrc = join(t.dataDir, "test.netrc");
    writeFileSync(netrc, `machine 127.0.0.1 login ferry password ${t.adminToken}\n`, { mode: 0o600 });
    const copy = spawn(
      "nix",
      [
        "copy",
        "--extra-experimental-features",
        "nix-command",
        "--to",
        `${t.baseUrl}/cache`,
        path,
        "--option",
        "netrc-file",
        netrc,
        "--option",
        "narinfo-cache-positive-ttl",
        "0",
        "--option",
        "narinfo-cache-negative-ttl",
        "0",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    copy.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => copy.kill("SIGKILL"), 45_000);
      copy.on("close", (exitCode) => {
        clearTimeout(timer);
        resolve(exitCode);
      });
    });
    assert.equal(code, 0, stderr);

    const response = await get(`${hash}.narinfo`);
    assert.equal(response.status, 200, stderr);
    const text = await response.text();
    assert.match(text, new RegExp(`^StorePath: ${path}$`, "m"));
    const url = /^URL: (\S+)$/m.exec(text)?.[1];
    assert.ok(url, text);
    const nar = await get(url);
    assert.equal(nar.status, 200);
    assert.ok((await nar.arrayBuffer()).byteLength > 0);
    assert.deepEqual(await t.controller.store.listHosts(), []);
  });
});
