// Ordinary mistakes, made with the real CLI, end in a specific code that names
// the file or address, and never in "this is a bug".
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer, type Server } from "node:net";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanGrpcDetails } from "../src/client.js";
import { TestController, cleanEnv, ferry, type CliResult } from "./cli-process.js";

type ErrorJson = { error: { code: string; message: string; hint: string } };

function errorOf(result: CliResult): ErrorJson["error"] {
  assert.notEqual(result.code, 0, result.stdout);
  assert.doesNotMatch(result.stdout + result.stderr, /this is a bug/i);
  return result.json<ErrorJson>().error;
}

function listening(server: Server | HttpServer): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      resolve(typeof address === "object" && address ? address.port : 0);
    }),
  );
}

describe("ordinary user errors", () => {
  const controller = new TestController();
  const taken = createServer();
  let takenPort = 0;
  const plainHttp = createHttpServer((_request, response) => response.writeHead(404).end());
  let plainPort = 0;
  const file = (name: string) => join(controller.dir, name);

  before(async () => {
    await controller.start();
    takenPort = await listening(taken);
    plainPort = await listening(plainHttp);
  });

  after(async () => {
    await controller.stop();
    taken.close();
    plainHttp.close();
  });

  test("a port in use, for either listener, is E_ADDRESS_IN_USE naming it, and the controller exits", async () => {
    const http = errorOf(await ferry(["controller", "--data-dir", file("c1"), "--listen", `127.0.0.1:${takenPort}`, "--grpc-listen", "127.0.0.1:0", "--json"]));
    assert.equal(http.code, "E_ADDRESS_IN_USE");
    assert.equal(http.message, `127.0.0.1:${takenPort} (the agent and cache listener, --listen) is already in use by another process`);
    // The HTTP listener was already open when gRPC failed: the process must still end, with exit status 1.
    const grpc = await ferry(["controller", "--data-dir", file("c2"), "--listen", "127.0.0.1:0", "--grpc-listen", `127.0.0.1:${takenPort}`], cleanEnv(), {
      timeoutMs: 15_000,
    });
    assert.equal(grpc.code, 1, grpc.stderr);
    assert.match(
      grpc.stderr,
      new RegExp(`error E_ADDRESS_IN_USE: 127\\.0\\.0\\.1:${takenPort} \\(the operator gRPC listener, --grpc-listen\\) is already in use`),
    );
    assert.doesNotMatch(grpc.stderr, /bug/);
  });

  test("the controller's HTTP port dialled as the operator port says so", async () => {
    const error = errorOf(await ferry(["status", "--json", "--controller", `127.0.0.1:${controller.httpPort}`, "--token-file", controller.tokenFile]));
    assert.equal(error.code, "E_NOT_OPERATOR_PORT");
    assert.equal(
      error.message,
      `127.0.0.1:${controller.httpPort} answers HTTP/1.1: that is the controller's agent/cache port (its --listen); the operator API listens on the controller's --grpc-listen (default 127.0.0.1:7071)`,
    );
    const other = errorOf(await ferry(["host", "list", "--json", "--controller", `127.0.0.1:${plainPort}`, "--token-file", controller.tokenFile]));
    assert.equal(other.code, "E_NOT_OPERATOR_PORT");
    assert.match(other.message, /answers HTTP\/1\.1: it is not a Ferry operator API/);
  });

  test("a refused connection names the address, without grpc-js's Resolution note", async () => {
    const error = errorOf(await ferry(["status", "--json", "--controller", "127.0.0.1:1", "--token-file", controller.tokenFile]));
    assert.equal(error.code, "E_CONTROLLER_UNREACHABLE");
    assert.equal(error.message, "cannot reach the controller at 127.0.0.1:1: connect ECONNREFUSED 127.0.0.1:1");
  });

  test("grpc-js details are cut to their cause", () => {
    assert.equal(cleanGrpcDetails("No connection established. Last error: Protocol error (2026-11-22T03:18:37.002Z). Resolution note: "), "Protocol error");
    assert.equal(
      cleanGrpcDetails("No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: "),
      "connect ECONNREFUSED 127.0.0.1:1",
    );
    assert.equal(cleanGrpcDetails("Name resolution failed. Resolution note: DNS lookup failed"), "Name resolution failed (DNS lookup failed)");
    assert.equal(cleanGrpcDetails("unknown host web-9"), "unknown host web-9");
  });

  test("missing and unreadable files are named, with what they are for", async () => {
    const connection = controller.connection();
    mkdirSync(file("a-directory"), { recursive: true });
    writeFileSync(file("key.secret"), "");
    const cases: [string[], string, string][] = [
      [
        ["status", "--controller", controller.address, "--token-file", file("absent.token")],
        "E_FILE_NOT_FOUND",
        `operator token file ${file("absent.token")} does not exist`,
      ],
      [
        ["status", "--controller", controller.address, "--token-file", file("a-directory")],
        "E_FILE_UNREADABLE",
        `operator token file ${file("a-directory")} is a directory, not a file`,
      ],
      [["rollout", "start", "--manifest", file("absent.json"), ...connection], "E_FILE_NOT_FOUND", `manifest ${file("absent.json")} does not exist`],
      [["bundle", "verify", file("absent.ferry"), "--trusted-key", "k:AAAA"], "E_FILE_NOT_FOUND", `bundle ${file("absent.ferry")} does not exist`],
      [["bundle", "inspect", file("absent.ferry")], "E_FILE_NOT_FOUND", `bundle ${file("absent.ferry")} does not exist`],
      [
        ["bundle", "create", "--manifest", file("absent.json"), "-o", file("out.ferry"), "--signing-key-file", file("key.secret")],
        "E_FILE_NOT_FOUND",
        `manifest ${file("absent.json")} does not exist`,
      ],
      [["agent", "check-config", "--config", file("absent.json")], "E_FILE_NOT_FOUND", `agent configuration ${file("absent.json")} does not exist`],
      [
        ["cache", "push", "/nix/store/0c8ahvb2flj8kllmqcqgamv1hbnhr07y-x", "--signing-key-file", file("absent.secret"), ...connection],
        "E_FILE_NOT_FOUND",
        `signing key ${file("absent.secret")} does not exist`,
      ],
    ];
    for (const [args, code, message] of cases) {
      const error = errorOf(await ferry([...args, "--json"]));
      assert.deepEqual([error.code, error.message], [code, message], args.join(" "));
    }
    writeFileSync(file("hosts.json"), JSON.stringify({ hosts: { "web-1": "/nix/store/0c8ahvb2flj8kllmqcqgamv1hbnhr07y-x" } }));
    const key = errorOf(
      await ferry(["bundle", "create", "--manifest", file("hosts.json"), "-o", file("out.ferry"), "--signing-key-file", file("absent.secret"), "--json"]),
    );
    assert.deepEqual([key.code, key.message], ["E_FILE_NOT_FOUND", `signing key ${file("absent.secret")} does not exist`]);
    assert.equal(existsSync(file("out.ferry")), false);
  });

  test("human output is the code, the message and the hint", async () => {
    const result = await ferry(["agent", "check-config", "--config", file("absent.json")]);
    assert.equal(result.code, 1);
    assert.equal(
      result.stderr,
      `error E_FILE_NOT_FOUND: agent configuration ${file("absent.json")} does not exist\n  hint: Check the named file's path; a relative path starts from the current directory.\n`,
    );
  });
});
