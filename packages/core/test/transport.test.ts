import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  FerryError,
  Nix,
  assertTransportAllowed,
  classifyTlsFailure,
  formatNetrc,
  isLoopbackHost,
  readTlsFiles,
  type CommandResult,
  type CommandRunner,
  type CommandSpec,
} from "@ferry/core";
import { TestCa, type IssuedCert } from "../../../test/harness/test-ca.js";

const PATH = "/nix/store/pz5wv3mkbf4bwihvsz8yqydfwb9bfhy5-nixos-system-web1";

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    return error instanceof FerryError ? error.code : `not a FerryError: ${String(error)}`;
  }
  return "no error";
}

describe("plaintext only to loopback", () => {
  test("loopback names and addresses", () => {
    for (const host of ["localhost", "api.localhost", "127.0.0.1", "127.8.9.10", "::1", "[::1]", "::ffff:127.0.0.1"]) assert.ok(isLoopbackHost(host), host);
    for (const host of ["10.0.0.1", "ctl.example", "128.0.0.1", "::2", "localhost.example.org", "0.0.0.0"]) assert.ok(!isLoopbackHost(host), host);
  });

  test("ws://, http:// and grpc:// elsewhere are refused unless allowed; TLS and file:// always pass", () => {
    assert.equal(
      code(() => assertTransportAllowed("ws://10.0.0.1/agent", false, "controllerUrl", "allow it")),
      "E_INSECURE_TRANSPORT",
    );
    assert.equal(
      code(() => assertTransportAllowed("grpc://ctl.example:7071", false, "--controller", "pass --insecure")),
      "E_INSECURE_TRANSPORT",
    );
    assert.equal(
      code(() => assertTransportAllowed("ws://10.0.0.1/agent", true, "controllerUrl", "allow it")),
      "no error",
    );
    for (const url of ["wss://ctl.example/agent", "https://ctl.example/cache", "file:///srv/cache", "http://127.0.0.1:7070/cache"]) {
      assert.equal(
        code(() => assertTransportAllowed(url, false, "x", "y")),
        "no error",
        url,
      );
    }
  });
});

describe("TLS failures by cause", () => {
  test("Node's verification codes", () => {
    const withCode = (value: string): Error => Object.assign(new Error("x"), { code: value });
    assert.equal(classifyTlsFailure(withCode("CERT_HAS_EXPIRED")), "E_TLS_EXPIRED");
    assert.equal(classifyTlsFailure(withCode("ERR_TLS_CERT_ALTNAME_INVALID")), "E_TLS_NAME_MISMATCH");
    assert.equal(classifyTlsFailure(withCode("SELF_SIGNED_CERT_IN_CHAIN")), "E_TLS_UNTRUSTED");
    assert.equal(classifyTlsFailure(withCode("ECONNREFUSED")), undefined);
  });

  test("the messages gRPC passes on", () => {
    assert.equal(classifyTlsFailure("No connection established. Last error: Error: certificate has expired"), "E_TLS_EXPIRED");
    assert.equal(
      classifyTlsFailure("No connection established. Last error: Error [ERR_TLS_CERT_ALTNAME_INVALID]: Hostname/IP does not match certificate's altnames"),
      "E_TLS_NAME_MISMATCH",
    );
    assert.equal(classifyTlsFailure("No connection established. Last error: Error: unable to verify the first certificate"), "E_TLS_UNTRUSTED");
    assert.equal(classifyTlsFailure("error:0A00045C:SSL routines::tlsv13 alert certificate required"), "E_TLS_CLIENT_CERT");
    assert.equal(classifyTlsFailure("No connection established. Last error: connect ECONNREFUSED 127.0.0.1:1"), undefined);
  });
});

describe("TLS files", () => {
  let dir: string;
  let ca: TestCa;
  let one: IssuedCert;
  let two: IssuedCert;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "ferry-tls-files-"));
    ca = await TestCa.create(dir);
    one = await ca.issueServer("one", { dns: ["one.example"] });
    two = await ca.issueServer("two", { dns: ["two.example"] });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("a certificate with its key and a CA are read", () => {
    const material = readTlsFiles({
      cert: { file: one.certFile, what: "--tls-cert" },
      key: { file: one.keyFile, what: "--tls-key" },
      ca: { file: ca.certFile, what: "--ca" },
    });
    assert.ok(material.cert && material.key && material.ca);
  });

  test("a key of another certificate, a missing file, a non-PEM file or half a pair: E_TLS_MATERIAL naming the flag", () => {
    const notPem = join(dir, "not.pem");
    writeFileSync(notPem, "hello\n");
    const cases: [Parameters<typeof readTlsFiles>[0], RegExp][] = [
      [{ cert: { file: one.certFile, what: "--tls-cert" }, key: { file: two.keyFile, what: "--tls-key" } }, /--tls-cert .* with --tls-key .* not usable/],
      [{ ca: { file: join(dir, "missing.pem"), what: "--ca" } }, /cannot read --ca/],
      [{ ca: { file: notPem, what: "caFile" } }, /caFile .* holds no PEM block/],
      [{ cert: { file: one.certFile, what: "--client-cert" } }, /--client-cert needs its key/],
    ];
    for (const [files, pattern] of cases) {
      assert.throws(
        () => readTlsFiles(files),
        (error: unknown) => error instanceof FerryError && error.code === "E_TLS_MATERIAL" && pattern.test(error.message),
        String(pattern),
      );
    }
  });
});

describe("netrc", () => {
  test("one line per machine; whitespace in a field is refused rather than misread", () => {
    assert.equal(formatNetrc([{ machine: "ctl.example", login: "web1", password: "tok" }]), "machine ctl.example login web1 password tok\n");
    assert.throws(() => formatNetrc([{ machine: "ctl.example", login: "web1", password: "tok machine evil" }]), { code: "E_BAD_ARGUMENT" });
  });
});

class FakeRunner implements CommandRunner {
  readonly calls: CommandSpec[] = [];
  constructor(private readonly answer: Partial<CommandResult> = {}) {}
  async run(spec: CommandSpec): Promise<CommandResult> {
    this.calls.push(spec);
    return { argv: spec.argv, exitCode: 0, signal: null, stdout: "[]", stderr: "", timedOut: false, ...this.answer };
  }
}

describe("Nix with a cache transport", () => {
  const options = { substituters: ["https://ctl.example/cache"], trustedPublicKeys: ["k:QUJD"] };

  test("the CA goes in NIX_SSL_CERT_FILE (Nix 2.8 has no ssl-cert-file setting), the netrc in --option netrc-file", async () => {
    const runner = new FakeRunner();
    const nix = new Nix(runner, { NIX_REMOTE: "local" });
    await nix.realise(PATH, { ...options, caFile: "/etc/ferry/ca.pem", netrcFile: "/var/lib/ferry-agent/cache.netrc" });
    await nix.closureInfosFrom(PATH, "https://ctl.example/cache", { caFile: "/etc/ferry/ca.pem", netrcFile: "/n" });
    await nix.copyTo("https://ctl.example/cache", [PATH], { caFile: "/etc/ferry/ca.pem", netrcFile: "/n" });
    for (const call of runner.calls) {
      assert.deepEqual(call.env, { NIX_REMOTE: "local", NIX_SSL_CERT_FILE: "/etc/ferry/ca.pem" }, call.argv.join(" "));
      const at = call.argv.indexOf("netrc-file");
      assert.ok(at > 0 && call.argv[at - 1] === "--option", call.argv.join(" "));
    }
  });

  test("without a transport nothing is added", async () => {
    const runner = new FakeRunner();
    await new Nix(runner).realise(PATH, options);
    assert.deepEqual(runner.calls[0]?.env, {});
    assert.ok(!runner.calls[0]?.argv.includes("netrc-file"));
  });

  test("a certificate curl refused (real Nix 2.8 output) is a TLS error, not a missing path", async () => {
    const stderr = [
      "warning: unable to download 'https://127.0.0.1:17070/cache/nix-cache-info': SSL peer certificate or SSH remote key was not OK (60)",
      "don't know how to build these paths:",
      `  ${PATH}`,
      `error: build of '${PATH}' failed`,
    ].join("\n");
    await assert.rejects(new Nix(new FakeRunner({ exitCode: 1, stderr })).realise(PATH, options), { code: "E_TLS_UNTRUSTED" });
    await assert.rejects(new Nix(new FakeRunner({ exitCode: 1, stderr })).copyTo("https://ctl.example/cache", [PATH]), { code: "E_TLS_UNTRUSTED" });
  });
});
