// Ordinary mistakes caught by the operating system get a code naming the file
// or address; every error here is a real one, produced by the real call.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createReadStream, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Server as GrpcServer, ServerCredentials } from "@grpc/grpc-js";
import { FerryError, explainSystemError, listenError, readTextFile } from "../src/index.js";

const require = createRequire(import.meta.url);

function caught(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  assert.fail("expected a failure");
}

function coded(code: string, pattern: RegExp): (error: unknown) => boolean {
  return (error) => error instanceof FerryError && error.code === code && pattern.test(error.message);
}

async function occupiedPort(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  assert.ok(address && typeof address === "object");
  return { server, port: address.port };
}

describe("files", () => {
  const dir = mkdtempSync(join(tmpdir(), "ferry-syserr-"));

  test("a missing file is E_FILE_NOT_FOUND naming it and what it is for", () => {
    const file = join(dir, "absent.token");
    assert.throws(() => readTextFile(file, "operator token file"), coded("E_FILE_NOT_FOUND", new RegExp(`^operator token file ${file} does not exist$`)));
    writeFileSync(join(dir, "plain"), "");
    assert.throws(() => readTextFile(join(dir, "plain", "x"), "manifest"), coded("E_FILE_NOT_FOUND", /a part of its path is not a directory/));
  });

  test("a directory where a file belongs is E_FILE_UNREADABLE", () => {
    assert.throws(() => readTextFile(dir, "agent configuration"), coded("E_FILE_UNREADABLE", /is a directory, not a file$/));
  });

  test(
    "a file this user may not read, or a directory it may not write, is E_FILE_UNREADABLE",
    { skip: process.getuid?.() === 0 ? false : "needs root to run the check as another user" },
    () => {
      const secret = join(dir, "secret.token");
      writeFileSync(secret, "x", { mode: 0o600 });
      // As nobody, for these two calls only (root passes every permission check):
      // effective ids, in this process, so the check works wherever the checkout lives.
      const out: { code: string; message: string }[] = [];
      const record = (error: unknown): void => {
        const explained = error instanceof FerryError ? error : explainSystemError(error);
        out.push({ code: explained?.code ?? "none", message: explained?.message ?? String(error) });
      };
      process.setegid?.(65534);
      process.seteuid?.(65534);
      try {
        try {
          readTextFile(secret, "operator token file");
        } catch (error) {
          record(error);
        }
        try {
          mkdirSync(join(dir, "made-by-nobody"));
        } catch (error) {
          record(error);
        }
      } finally {
        process.seteuid?.(0);
        process.setegid?.(0);
      }
      assert.deepEqual(out, [
        { code: "E_FILE_UNREADABLE", message: `operator token file ${secret} is not readable by this user (uid 65534)` },
        { code: "E_FILE_UNREADABLE", message: `file ${join(dir, "made-by-nobody")} is not writable by this user (uid 65534)` },
      ]);
    },
  );

  test("a stream's ENOENT that escaped is explained with its path", async () => {
    const file = join(dir, "bundle.ferry");
    const error = await new Promise<unknown>((resolve) => createReadStream(file).on("error", resolve));
    assert.ok(coded("E_FILE_NOT_FOUND", new RegExp(`^file ${file} does not exist$`))(explainSystemError(error)));
  });

  test("a directory that cannot be created under a file is explained", () => {
    writeFileSync(join(dir, "blocker"), "");
    const error = caught(() => mkdirSync(join(dir, "blocker", "sub", "deeper"), { recursive: true }));
    const explained = explainSystemError(error);
    assert.ok(explained instanceof FerryError, String(error));
    assert.equal(explained.code, "E_FILE_NOT_FOUND");
  });
});

describe("addresses", () => {
  test("a port taken under the HTTP listener is E_ADDRESS_IN_USE naming address and listener", async () => {
    const { server, port } = await occupiedPort();
    try {
      const second = createServer();
      const error = await new Promise<unknown>((resolve) => second.once("error", resolve).listen(port, "127.0.0.1"));
      assert.ok(
        coded(
          "E_ADDRESS_IN_USE",
          new RegExp(`^127\\.0\\.0\\.1:${port} \\(--listen\\) is already in use`),
        )(listenError(error, { host: "127.0.0.1", port }, "--listen")),
      );
      assert.ok(coded("E_ADDRESS_IN_USE", new RegExp(`127\\.0\\.0\\.1:${port}`))(explainSystemError(error)));
    } finally {
      server.close();
    }
  });

  test("gRPC's wording of the same failure is recognised too", async () => {
    const { server, port } = await occupiedPort();
    const grpc = new GrpcServer();
    try {
      const error = await new Promise<Error | null>((resolve) => grpc.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (e) => resolve(e)));
      assert.ok(error, "binding an occupied port should fail");
      assert.ok(
        coded("E_ADDRESS_IN_USE", /\(--grpc-listen\) is already in use by another process$/)(listenError(error, { host: "127.0.0.1", port }, "--grpc-listen")),
      );
    } finally {
      grpc.forceShutdown();
      server.close();
    }
  });

  test("an address that is not this machine's is a bad argument, not a bug", async () => {
    const server = createServer();
    const error = await new Promise<unknown>((resolve) => server.once("error", resolve).listen(7070, "192.0.2.1"));
    assert.ok(
      coded(
        "E_BAD_ARGUMENT",
        /192\.0\.2\.1:7070 \(--listen\) is not an address of this machine/,
      )(listenError(error, { host: "192.0.2.1", port: 7070 }, "--listen")),
    );
  });
});

describe("native modules", () => {
  test("a .node file that does not load names its package and what to run", () => {
    const dir = mkdtempSync(join(tmpdir(), "ferry-native-"));
    const module = join(dir, "node_modules", "fake-native", "build", "Release");
    mkdirSync(module, { recursive: true });
    writeFileSync(join(module, "fake.node"), "not a shared object");
    const explained = explainSystemError(caught(() => require(join(module, "fake.node"))));
    assert.ok(explained instanceof FerryError);
    assert.equal(explained.code, "E_NATIVE_MODULE");
    assert.match(explained.message, /^native module fake-native cannot be loaded by Node\.js v\d+/);
    assert.match(explained.message, /run `npm rebuild fake-native` \(or `npm ci`\)/);
  });

  test("better-sqlite3 never built (the bindings file is missing) says npm rebuild better-sqlite3", () => {
    const root = join(mkdtempSync(join(tmpdir(), "ferry-native-")), "node_modules", "better-sqlite3");
    mkdirSync(root, { recursive: true });
    const bindings = require("bindings") as (options: { bindings: string; module_root: string }) => unknown;
    const explained = explainSystemError(caught(() => bindings({ bindings: "better_sqlite3.node", module_root: root })));
    assert.ok(explained instanceof FerryError);
    assert.equal(explained.code, "E_NATIVE_MODULE");
    assert.equal(
      explained.message,
      `native module better-sqlite3 cannot be loaded by Node.js ${process.version}: its compiled .node file is missing (never built?); run \`npm rebuild better-sqlite3\` (or \`npm ci\`) in the Ferry checkout`,
    );
  });

  test("other errors are left alone", () => {
    assert.equal(explainSystemError(new Error("something else")), undefined);
    assert.equal(explainSystemError(new FerryError("E_AUTH", "x")), undefined);
  });
});
