// The README's quick start, step by step, as a newcomer types it: relative
// paths from a working directory, the real CLI, a real controller, and the
// agent in `ferry dev host` so that this machine's own system is left alone.
import { strict as assert } from "node:assert";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { waitFor } from "../harness/exec.js";
import { ferry } from "../harness/ferry-cli.js";
import { buildFixtureSystem } from "../harness/fixtures.js";
import { FERRY_BIN } from "../harness/paths.js";

const work = mkdtempSync(join(tmpdir(), "ferry-quick-start-"));
const children: ChildProcess[] = [];
let env: Record<string, string> = {};

function systemProfile(): string | undefined {
  try {
    return readlinkSync("/nix/var/nix/profiles/system");
  } catch {
    return undefined;
  }
}

function start(args: string[], logName: string): ChildProcess {
  const log = openSync(join(work, logName), "a");
  const child = spawn(process.execPath, [FERRY_BIN, ...args], { cwd: work, stdio: ["ignore", log, log] });
  children.push(child);
  return child;
}

before(async () => {
  start(["controller", "--data-dir", "./ferry-data", "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0"], "controller.log");
  const started = await waitFor(
    "controller start",
    () => {
      const line = readFileSync(join(work, "controller.log"), "utf8")
        .split("\n")
        .find((l) => l.includes('"controller started"'));
      return line ? (JSON.parse(line) as { httpPort: number; grpcPort: number }) : undefined;
    },
    20_000,
    50,
  );
  env = { FERRY_CONTROLLER: `127.0.0.1:${started.grpcPort}`, FERRY_TOKEN_FILE: join(work, "ferry-data/admin.token"), HTTP_PORT: String(started.httpPort) };
});

after(async () => {
  for (const child of children.reverse()) {
    if (child.exitCode !== null) continue;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGINT");
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000).unref())]);
  }
  rmSync(work, { recursive: true, force: true });
});

test("the quick start, followed literally, deploys to a dev host and leaves this machine's system alone", async () => {
  const profileBefore = systemProfile();
  const inWork = (args: string[]) => ferryIn(work, args);

  const keys = await inWork(["keys", "generate", "--name", "fleet-1", "--out", "./keys"]);
  assert.equal(keys.code, 0, keys.stderr);
  const added = await inWork(["host", "add", "web-1", "--tag", "web", "--token-out", "./web-1.token"]);
  assert.equal(added.code, 0, added.stderr);

  const path = await buildFixtureSystem("web-1", 1);
  const pushed = await inWork(["cache", "push", path, "--signing-key-file", "./keys/fleet-1.secret"]);
  assert.equal(pushed.code, 0, pushed.stderr);

  const port = env["HTTP_PORT"] ?? "";
  writeFileSync(
    join(work, "agent.json"),
    JSON.stringify({
      controllerUrl: `ws://127.0.0.1:${port}/agent`,
      hostName: "web-1",
      tokenFile: join(work, "web-1.token"),
      substituters: [`http://127.0.0.1:${port}/cache`],
      trustedPublicKeys: [readFileSync(join(work, "keys/fleet-1.public"), "utf8").trim()],
    }),
  );
  start(["dev", "host", "--config", "agent.json", "--dir", "./dev-host"], "agent.log");
  await waitFor("dev host online", async () => {
    const status = (await inWork(["status", "--json"])).json<{ hosts: { online: boolean }[] }>();
    return status.hosts[0]?.online || undefined;
  });

  const deployed = await inWork(["deploy", `web-1=${path}`, "--wait", "--timeout", "120"]);
  assert.equal(deployed.code, 0, `${deployed.stdout}${deployed.stderr}\n${readFileSync(join(work, "agent.log"), "utf8")}`);
  const status = (await inWork(["status", "web-1", "--json"])).json<{ hosts: { phase: string; currentSystem: string }[] }>();
  assert.equal(status.hosts[0]?.phase, "active");
  assert.equal(status.hosts[0]?.currentSystem, path);

  // The dev host switched its own profile, inside its own /nix.
  assert.equal(systemProfile(), profileBefore, "this machine's system profile must not change");
  assert.match(readlinkSync(join(work, "dev-host/nix/var/nix/profiles/system")), /^system-1-link$/);
});

async function ferryIn(cwd: string, args: string[]): Promise<Awaited<ReturnType<typeof ferry>>> {
  return ferry(args, env, 180_000, cwd);
}
