// `ferry controller` owns its data directory: a second one is refused with the
// holder's pid, a SIGKILLed holder leaves no stale lock, two started at one
// instant give exactly one controller, and a failed start on a fresh directory
// leaves nothing. Real processes, real CLI; no Nix and no namespaces needed.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ControllerProcess } from "../harness/controller-proc.js";
import { FERRY_BIN } from "../harness/paths.js";

const root = mkdtempSync(join(tmpdir(), "ferry-controller-start-"));
const running: ControllerProcess[] = [];
after(async () => {
  for (const controller of running) await controller.stop("SIGKILL");
  rmSync(root, { recursive: true, force: true });
});
let counter = 0;
/** A data directory not yet made, in a directory of its own (where ControllerProcess keeps its log). */
function fresh(): string {
  const dir = join(root, `case-${++counter}`);
  mkdirSync(dir);
  return join(dir, "data");
}

interface Outcome {
  pid: number;
  /** "started" once it logged readiness (it is then killed), else its exit code. */
  result: "started" | number;
  output: string;
}

/**
 * Runs `ferry controller` until it exits, or until it is ready and `release`
 * settles (then SIGKILLs it); 20 s at most. `answered` settles as soon as it is
 * ready or has exited, so a race can hold every winner until all have answered.
 */
function runController(
  dataDir: string,
  listen = "127.0.0.1:0",
  release: Promise<unknown> = Promise.resolve(),
): { answered: Promise<void>; done: Promise<Outcome> } {
  let answer: () => void = () => undefined;
  const answered = new Promise<void>((resolve) => (answer = resolve));
  const done = new Promise<Outcome>((resolve, reject) => {
    const child = spawn(process.execPath, [FERRY_BIN, "controller", "--data-dir", dataDir, "--listen", listen, "--grpc-listen", "127.0.0.1:0"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    let started = false;
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (!started && output.includes('"controller started"')) {
        started = true;
        answer();
        void release.then(() => child.kill("SIGKILL"));
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      answer();
      resolve({ pid: child.pid as number, result: started ? "started" : (code ?? -1), output });
    });
  });
  return { answered, done };
}

describe("the controller's data directory lock", () => {
  test("a second controller is refused with E_DATA_DIR_LOCKED naming the first one's pid and command", async () => {
    const first = new ControllerProcess(fresh());
    running.push(first);
    await first.start();
    const second = await runController(first.dataDir).done;
    assert.equal(second.result, 1, second.output);
    assert.match(
      second.output,
      new RegExp(`error E_DATA_DIR_LOCKED: data directory ${first.dataDir} is in use by another controller: pid ${first.pid} \\(.*controller --data-dir`),
    );
    // The first one is untouched and still serves.
    const health = await fetch(`http://127.0.0.1:${first.httpPort}/healthz`);
    assert.equal(health.status, 200);
  });

  test("kill -9 the holder: the next controller starts at once on the same directory", async () => {
    const controller = new ControllerProcess(fresh());
    running.push(controller);
    await controller.start();
    await controller.stop("SIGKILL");
    const startedAt = Date.now();
    await controller.start();
    assert.ok(Date.now() - startedAt < 10_000);
    assert.equal((await fetch(`http://127.0.0.1:${controller.httpPort}/healthz`)).status, 200);
  });

  test("two controllers started at the same instant on a fresh directory: exactly one runs, the other names it", async () => {
    for (let round = 0; round < 4; round++) {
      const dataDir = fresh();
      let releaseAll: () => void = () => undefined;
      const release = new Promise<void>((resolve) => (releaseAll = resolve));
      const runs = [runController(dataDir, undefined, release), runController(dataDir, undefined, release)];
      await Promise.all(runs.map((run) => run.answered));
      releaseAll();
      const outcomes = await Promise.all(runs.map((run) => run.done));
      const winners = outcomes.filter((outcome) => outcome.result === "started");
      const losers = outcomes.filter((outcome) => outcome.result !== "started");
      assert.equal(winners.length, 1, outcomes.map((outcome) => outcome.output).join("\n---\n"));
      const [winner, loser] = [winners[0] as Outcome, losers[0] as Outcome];
      assert.equal(loser.result, 1, loser.output);
      assert.match(loser.output, new RegExp(`E_DATA_DIR_LOCKED: .* pid ${winner.pid} `));
      assert.ok(existsSync(join(dataDir, "admin.token")), "the winner's directory stays");
    }
  });

  test("a failed start on a fresh directory (its port is taken) leaves no directory behind", async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as { port: number };
    try {
      const top = join(root, `case-${++counter}`);
      const outcome = await runController(join(top, "nested", "data"), `127.0.0.1:${port}`).done;
      assert.equal(outcome.result, 1, outcome.output);
      assert.match(outcome.output, /EADDRINUSE|E_ADDRESS_IN_USE/);
      assert.equal(existsSync(top), false);
    } finally {
      server.close();
    }
  });
});
