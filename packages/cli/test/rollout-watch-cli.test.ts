// The real `ferry rollout status ID --wait` against a fake operator API that
// answers GetRollout from a script: through a pipe (plain lines for CI logs)
// and in a pseudo-terminal (util-linux `script`), where a typed Ctrl-C must
// leave the rollout alone, restore the cursor, say how to watch again and
// exit 130. Needs `npm run build` first (it runs packages/cli/dist).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { stripVTControlCharacters } from "node:util";
import { Server, ServerCredentials, type sendUnaryData, type ServerUnaryCall } from "@grpc/grpc-js";
import { OperatorServiceService, type GetRolloutRequest, type GetRolloutResponse, type Rollout } from "@ferry/protocol";
import { host, rollout } from "./rollout-fixtures.js";

const FERRY = fileURLToPath(new URL("../dist/main.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "ferry-rollout-watch-"));
const tokenFile = join(dir, "token");
writeFileSync(tokenFile, "not-checked-by-the-fake\n");

/** What the fake controller answers for each rollout id, one answer per call, the last one repeated. */
const scripts = new Map<string, Rollout[]>();
const calls = new Map<string, number>();
let server: Server;
let address = "";

before(async () => {
  server = new Server();
  server.addService(OperatorServiceService, {
    getRollout(call: ServerUnaryCall<GetRolloutRequest, GetRolloutResponse>, callback: sendUnaryData<GetRolloutResponse>) {
      const answers = scripts.get(call.request.id) ?? [];
      const n = calls.get(call.request.id) ?? 0;
      calls.set(call.request.id, n + 1);
      callback(null, { rollout: answers[Math.min(n, answers.length - 1)] });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  address = `127.0.0.1:${port}`;
});

after(() => {
  server.forceShutdown();
  rmSync(dir, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(argv: string[], options: { stdin?: (child: ReturnType<typeof spawn>, output: () => string) => void; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0] as string, argv.slice(1), {
      env: { ...process.env, FERRY_CONTROLLER: address, FERRY_TOKEN_FILE: tokenFile, TERM: "xterm-256color" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${argv.join(" ")} still running after ${options.timeoutMs ?? 30_000} ms:\n${stdout}\n${stderr}`));
    }, options.timeoutMs ?? 30_000);
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      options.stdin?.(child, () => stdout);
    });
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const hasScript = spawnSync("script", ["--version"]).status === 0;

describe("ferry rollout status ID --wait", () => {
  test("through a pipe: plain change lines without escape codes, then the result; exit 0 when every host confirmed", async () => {
    const id = "r-plain-000001";
    scripts.set(id, [
      rollout({ id, currentWave: 1, hosts: [host("web-1", 1, "activating"), host("web-2", 2, "prefetched")] }),
      rollout({ id, currentWave: 2, hosts: [host("web-1", 1, "confirmed"), host("web-2", 2, "activating")] }),
      rollout({ id, state: "completed", reason: "2 confirmed, 0 failed, 0 skipped", hosts: [host("web-1", 1, "confirmed"), host("web-2", 2, "confirmed")] }),
    ]);
    const result = await run([process.execPath, FERRY, "rollout", "status", id, "--wait", "--timeout", "20"]);
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stderr, /\u001b/, "no escape codes in a log");
    const lines = result.stderr.trimEnd().split("\n");
    for (const expected of [
      /^\[\+\S+\] canary \(1\/2\): web-1 started$/,
      /^\[\+\S+\] web-1 activating \(canary\)$/,
      /^\[\+\S+\] web-1 confirmed \(canary\)$/,
      /^\[\+\S+\] web-2 activating \(wave 2\)$/,
      /^\[\+\S+\] completed: 2 confirmed, 0 failed, 0 skipped$/,
      /^rollout r-plain-000001 completed: 2 hosts: 2 confirmed$/,
    ])
      assert.ok(
        lines.some((line) => expected.test(line)),
        `${expected} in:\n${result.stderr}`,
      );
    assert.equal(lines.filter((line) => / web-1 activating /.test(line)).length, 1, "one line per change, not one per poll");
  });

  test("with --json: stdout holds only the result, with counts from the view's classification", async () => {
    const id = "r-json-000001";
    scripts.set(id, [
      rollout({
        id,
        state: "aborted",
        reason: "the canary failed",
        hosts: [host("web-1", 1, "rolled-back", "E_HEALTH_CHECK_FAILED"), host("web-2", 2, "prefetched")],
      }),
    ]);
    const result = await run([process.execPath, FERRY, "rollout", "status", id, "--wait", "--json"]);
    assert.equal(result.code, 1, "an aborted rollout is not a success");
    const counts = (JSON.parse(result.stdout) as { rollout: { counts: Record<string, number> } }).rollout.counts;
    assert.equal(counts["failed"], 1);
    assert.equal(counts["waiting"], 1);
    assert.equal(counts["total"], 2);
  });

  test(
    "in a terminal, Ctrl-C restores the cursor, says the rollout goes on and how to watch it again, and exits 130",
    { skip: !hasScript && "util-linux `script` is not installed" },
    async () => {
      const id = "r-ctrlc-000001";
      scripts.set(id, [rollout({ id, hosts: [host("web-1", 1, "confirmed"), host("web-2", 2, "activating")] })]);
      const command = `stty cols 60 rows 20 && exec '${process.execPath}' '${FERRY}' rollout status ${id} --wait`;
      let typed = false;
      const result = await run(["script", "-qfec", command, "/dev/null"], {
        stdin: (child, output) => {
          // Type Ctrl-C once the view is up: the terminal turns it into SIGINT for the CLI.
          if (!typed && output().includes("Ctrl-C stops watching")) {
            typed = true;
            child.stdin?.write("\u0003");
          }
        },
      });
      const screen = stripVTControlCharacters(result.stdout);
      assert.equal(result.code, 130, result.stdout);
      assert.ok(typed, "the view was drawn");
      assert.match(result.stdout, /\u001b\[\?25l/, "the live view hides the cursor");
      assert.ok(result.stdout.lastIndexOf("\u001b[?25h") > result.stdout.lastIndexOf("\u001b[?25l"), "and shows it again");
      assert.match(screen, /Stopped watching\. Rollout r-ctrlc-000001 goes on on the controller\./);
      assert.match(screen, /watch it again: +ferry rollout status r-ctrlc-000001 --wait/);
      assert.match(screen, /activating web-2/, "the last frame names the hosts");
    },
  );
});
