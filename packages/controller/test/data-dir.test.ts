// The data directory's lock and the all-or-nothing start, in one process.
// test/e2e/controller-start.test.ts does the same across real processes
// (SIGKILL, two starts at one instant).
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer, type Server } from "node:net";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FerryError, silentLogger, type ErrorCode } from "@ferry/core";
import { startController, type ControllerOptions } from "@ferry/controller";
import { lockDataDir } from "../src/data-dir-lock.js";

const root = mkdtempSync(join(tmpdir(), "ferry-data-dir-"));
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
const fresh = (): string => join(root, `case-${++counter}`);

function hasCode(code: ErrorCode, pattern?: RegExp): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof FerryError, `expected FerryError ${code}, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (pattern) assert.match(error.message, pattern);
    return true;
  };
}

function options(dataDir: string, ports: { http?: number; grpc?: number } = {}): ControllerOptions {
  return {
    dataDir,
    listen: { host: "127.0.0.1", port: ports.http ?? 0 },
    grpcListen: { host: "127.0.0.1", port: ports.grpc ?? 0 },
    log: silentLogger(),
  };
}

async function occupiedPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  assert.ok(address && typeof address === "object");
  return { port: address.port, server };
}

describe("the data directory lock", () => {
  test("a second lock is refused with E_DATA_DIR_LOCKED naming the holder's pid; after release it is free", () => {
    const dir = fresh();
    const first = lockDataDir(dir);
    assert.equal(first.created, dir);
    assert.throws(() => lockDataDir(dir), hasCode("E_DATA_DIR_LOCKED", new RegExp(`pid ${process.pid} \\(.*node`)));
    first.release();
    const second = lockDataDir(dir);
    assert.equal(second.created, undefined, "the directory was there already");
    second.release();
  });

  test("a second controller on the same directory is refused and the first keeps working", async () => {
    const dir = fresh();
    const running = await startController(options(dir));
    try {
      const token = readFileSync(join(dir, "admin.token"), "utf8");
      await assert.rejects(startController(options(dir)), hasCode("E_DATA_DIR_LOCKED", new RegExp(`pid ${process.pid}`)));
      assert.equal(readFileSync(join(dir, "admin.token"), "utf8"), token);
      assert.deepEqual(await running.store.listHosts(), []);
    } finally {
      await running.stop();
    }
    // A clean stop lets go: the next start takes the same directory.
    const next = await startController(options(dir));
    await next.stop();
  });
});

/**
 * Four processes that each try the lock at the same wall-clock millisecond.
 * A winner holds on until every process has answered, so one that starts
 * late on a loaded machine still meets it, and drops its reference to the
 * lock and collects garbage, to prove the lock outlives the reference.
 * Resolves with "PID won" or "PID lost CODE MESSAGE" per process.
 */
async function raceForLock(dir: string): Promise<string[]> {
  const module = new URL("../src/data-dir-lock.ts", import.meta.url).href;
  const at = Date.now() + 1500;
  const script = `
    const { lockDataDir } = await import(${JSON.stringify(module)});
    while (Date.now() < ${at}) {}
    try { lockDataDir(${JSON.stringify(dir)}); globalThis.gc(); console.log("won"); setInterval(() => undefined, 1000); }
    catch (error) { console.log("lost " + error.code + " " + error.message); }`;
  const children = Array.from({ length: 4 }, () =>
    spawn(process.execPath, ["--expose-gc", "--import", "tsx", "--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] }),
  );
  const killAll = (): void => {
    for (const child of children) child.kill("SIGKILL");
  };
  const timer = setTimeout(killAll, 30_000);
  try {
    return await Promise.all(
      children.map(
        (child) =>
          new Promise<string>((resolve, reject) => {
            let out = "";
            child.stdout.on("data", (chunk: Buffer) => {
              out += chunk.toString();
              if (out.includes("\n")) resolve(`${child.pid} ${out.trim()}`);
            });
            child.on("error", reject);
            child.on("close", () => resolve(`${child.pid} ${out.trim() || "exited without answering"}`));
          }),
      ),
    );
  } finally {
    clearTimeout(timer);
    killAll();
  }
}

describe("the data directory lock across processes", () => {
  test("four processes taking it at the same instant: exactly one wins, the others name it", async () => {
    for (let round = 0; round < 2; round++) {
      const lines = await raceForLock(fresh());
      const winners = lines.filter((line) => / won$/.test(line));
      assert.equal(winners.length, 1, lines.join("\n"));
      const winnerPid = (winners[0] as string).split(" ")[0];
      for (const line of lines.filter((line) => !/ won$/.test(line))) assert.match(line, new RegExp(`lost E_DATA_DIR_LOCKED .* pid ${winnerPid} `));
    }
  });
});

describe("a failed start leaves nothing half made", () => {
  test("in a directory it created (with parents): all of it goes, whichever port is taken", async () => {
    const { port, server } = await occupiedPort();
    try {
      for (const ports of [{ http: port }, { grpc: port }]) {
        const top = fresh();
        await assert.rejects(startController(options(join(top, "a", "b"), ports)));
        assert.equal(existsSync(top), false, `${top} left behind (ports ${JSON.stringify(ports)})`);
      }
    } finally {
      server.close();
    }
  });

  test("in a directory that existed: what it held stays, what the start added goes", async () => {
    const { port, server } = await occupiedPort();
    try {
      const dir = fresh();
      mkdirSync(dir);
      writeFileSync(join(dir, "operator-notes"), "mine\n");
      await assert.rejects(startController(options(dir, { http: port })));
      // The lock file stays: another starter may have it open already.
      assert.deepEqual(readdirSync(dir).sort(), ["controller.lock", "operator-notes"]);
      assert.equal(readFileSync(join(dir, "operator-notes"), "utf8"), "mine\n");
    } finally {
      server.close();
    }
  });

  test("a directory of a controller that ran before keeps its token and state when a start fails", async () => {
    const dir = fresh();
    const first = await startController(options(dir));
    await first.store.addHost("web-1", "hash", [], 1);
    await first.stop();
    const before = readdirSync(dir).sort();
    const token = readFileSync(join(dir, "admin.token"), "utf8");
    const { port, server } = await occupiedPort();
    try {
      await assert.rejects(startController(options(dir, { grpc: port })));
    } finally {
      server.close();
    }
    assert.deepEqual(readdirSync(dir).sort(), before);
    assert.equal(readFileSync(join(dir, "admin.token"), "utf8"), token);
    const again = await startController(options(dir));
    try {
      assert.deepEqual(
        (await again.store.listHosts()).map((host) => host.name),
        ["web-1"],
      );
    } finally {
      await again.stop();
    }
  });

  test("an unusable token in an existing directory: E_BAD_CONFIG, the file is kept and the lock let go", async () => {
    const dir = fresh();
    mkdirSync(dir);
    writeFileSync(join(dir, "admin.token"), "short\n");
    await assert.rejects(startController(options(dir)), hasCode("E_BAD_CONFIG"));
    assert.equal(readFileSync(join(dir, "admin.token"), "utf8"), "short\n");
    lockDataDir(dir).release();
  });
});
