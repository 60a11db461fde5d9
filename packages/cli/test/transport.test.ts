import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { FerryError } from "@ferry/core";
import { controllerTransport } from "../src/transport.js";
import { toCliError } from "../src/client.js";
import { TestCa, type IssuedCert } from "../../../test/harness/test-ca.js";

function refused(settings: Parameters<typeof controllerTransport>[0], code: string, pattern: RegExp): void {
  assert.throws(
    () => controllerTransport(settings),
    (error: unknown) => error instanceof FerryError && error.code === code && pattern.test(error.message),
    JSON.stringify(settings),
  );
}

describe("the CLI's transport to the controller", () => {
  let dir: string;
  let ca: TestCa;
  let client: IssuedCert;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "ferry-cli-transport-"));
    ca = await TestCa.create(dir);
    client = await ca.issueClient("operator");
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("https:// and grpcs:// dial TLS; a bare HOST:PORT and http:// are plaintext", () => {
    for (const controller of ["https://ctl.example:7071", "grpcs://ctl.example:7071", "https://ctl.example:7071/"]) {
      const transport = controllerTransport({ controller, ca: ca.certFile });
      assert.equal(transport.secure, true, controller);
      assert.equal(transport.address, "ctl.example:7071");
      assert.equal(transport.caFile, ca.certFile);
      assert.ok(transport.tls.ca);
    }
    for (const controller of ["127.0.0.1:7071", "http://localhost:7071", "grpc://[::1]:7071"]) {
      assert.equal(controllerTransport({ controller }).secure, false, controller);
    }
  });

  test("plaintext to a non-loopback controller needs --insecure", () => {
    refused({ controller: "10.0.0.1:7071" }, "E_INSECURE_TRANSPORT", /--controller .* plaintext .*pass --insecure/);
    refused({ controller: "http://ctl.example:7071" }, "E_INSECURE_TRANSPORT", /plaintext/);
    assert.equal(controllerTransport({ controller: "10.0.0.1:7071", insecure: true }).secure, false);
  });

  test("TLS files with a plaintext address, an unknown scheme or a half client pair are refused", () => {
    refused({ controller: "127.0.0.1:7071", ca: ca.certFile }, "E_BAD_ARGUMENT", /--ca, --client-cert and --client-key apply to TLS/);
    refused({ controller: "ftp://ctl.example:7071" }, "E_BAD_ARGUMENT", /unknown scheme ftp/);
    refused({ controller: "https://ctl.example:7071", clientCert: client.certFile }, "E_TLS_MATERIAL", /--client-cert needs its key/);
    refused({ controller: "https://ctl.example:7071", ca: join(dir, "missing.pem") }, "E_TLS_MATERIAL", /cannot read --ca/);
    const pair = controllerTransport({ controller: "https://ctl.example:7071", clientCert: client.certFile, clientKey: client.keyFile });
    assert.ok(pair.tls.cert && pair.tls.key && !pair.tls.ca, "no --ca: the system trust store");
  });

  test("gRPC's TLS failures become the matching codes", () => {
    const unavailable = (details: string): ServiceError => Object.assign(new Error(details), { code: status.UNAVAILABLE, details, metadata: new Metadata() });
    assert.equal(toCliError(unavailable("No connection established. Last error: Error: self-signed certificate in certificate chain")).code, "E_TLS_UNTRUSTED");
    assert.equal(toCliError(unavailable("No connection established. Last error: Error: certificate has expired")).code, "E_TLS_EXPIRED");
    assert.equal(toCliError(unavailable("No connection established. Last error: connect ECONNREFUSED 127.0.0.1:1")).code, "E_CONTROLLER_UNREACHABLE");
  });
});
