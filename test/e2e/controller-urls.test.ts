// An agent given several controller URLs (controllerUrls): a dead one does
// not keep it from the live controller, and when that controller goes away it
// moves on to another replica: a second controller process on the same
// PostgreSQL database (with a copy of the first one's admin.token, as an
// operator hands it over), so the host and its token are the same there.
import { strict as assert } from "node:assert";
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { ControllerProcess } from "../harness/controller-proc.js";
import { waitFor } from "../harness/exec.js";
import { ferry } from "../harness/ferry-cli.js";
import { FERRY_BIN } from "../harness/paths.js";
import { freePort } from "../harness/ports.js";
import { findPostgres, startPostgres, type PostgresCluster } from "../harness/postgres.js";

const found = findPostgres();
const skip = "skip" in found ? found.skip : false;

const work = mkdtempSync(join(tmpdir(), "ferry-controller-urls-"));
const controllers: ControllerProcess[] = [];
let agent: ChildProcess | undefined;
let cluster: PostgresCluster | undefined;
let database = "";

before(async () => {
  if (skip) return;
  cluster = await startPostgres();
  database = await cluster.createDatabase("ferry");
});

after(async () => {
  if (agent && agent.exitCode === null) {
    const exited = new Promise((resolve) => agent?.once("exit", resolve));
    agent.kill("SIGTERM");
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000).unref())]);
  }
  for (const controller of controllers) await controller.stop();
  await cluster?.stop();
  rmSync(work, { recursive: true, force: true });
});

function controllerIn(name: string): ControllerProcess {
  mkdirSync(join(work, name));
  const controller = new ControllerProcess(join(work, name, "data"), { listenHost: "127.0.0.1", database });
  controllers.push(controller);
  return controller;
}

function cliEnv(controller: ControllerProcess): Record<string, string> {
  return { FERRY_CONTROLLER: controller.address, FERRY_TOKEN_FILE: controller.tokenFile };
}

async function online(controller: ControllerProcess): Promise<boolean> {
  const status = await ferry(["status", "web-1", "--json"], cliEnv(controller));
  return status.code === 0 && status.json<{ hosts: { online: boolean }[] }>().hosts[0]?.online === true;
}

const agentLog = join(work, "agent.log");
/** The URLs the agent logged a welcome from, in order. */
function connectedUrls(): string[] {
  return readFileSync(agentLog, "utf8")
    .split("\n")
    .filter((line) => line.includes('"connected to controller"'))
    .map((line) => (JSON.parse(line) as { url: string }).url);
}

test("an agent with a dead URL in its list reaches the live controller, then fails over to a replica when it stops", { skip }, async () => {
  const dead = `ws://127.0.0.1:${await freePort()}/agent`;
  const replicaPort = await freePort();
  const first = controllerIn("first");
  await first.start();
  const added = await ferry(["host", "add", "web-1", "--token-out", join(work, "web-1.token")], cliEnv(first));
  assert.equal(added.code, 0, added.stderr);

  const firstUrl = `ws://127.0.0.1:${first.httpPort}/agent`;
  const replicaUrl = `ws://127.0.0.1:${replicaPort}/agent`;
  const config = join(work, "agent.json");
  writeFileSync(
    config,
    JSON.stringify({
      controllerUrls: [dead, firstUrl, replicaUrl],
      hostName: "web-1",
      tokenFile: join(work, "web-1.token"),
      substituters: [`http://127.0.0.1:${first.httpPort}/cache`],
      trustedPublicKeys: ["ferry-test-1:dGVzdC1rZXktbm90LXJlYWwtMDEyMzQ1Njc4OWFiY2RlZg=="],
      stateDir: join(work, "agent-state"),
      profile: join(work, "no-profile"),
      currentSystemLink: join(work, "no-current-system"),
      switchLockFile: join(work, "switch.lock"),
      gcSchedule: "",
      heartbeatInterval: 1,
      reconnectMaxDelay: 2,
      logLevel: "debug",
    }),
  );
  const log = openSync(agentLog, "a");
  agent = spawn(process.execPath, [FERRY_BIN, "agent", "--config", config], { stdio: ["ignore", log, log] });

  await waitFor("the agent online at the first controller", async () => (await online(first)) || undefined, 30_000, 250);
  assert.deepEqual(connectedUrls(), [firstUrl], "the dead URL and the replica not yet started were skipped");

  // The first controller goes away; a replica on the same database comes up on the port the agent already knows.
  await first.stop();
  const replica = controllerIn("replica");
  mkdirSync(replica.dataDir);
  copyFileSync(first.tokenFile, replica.tokenFile);
  replica.httpPort = replicaPort;
  await replica.start();

  await waitFor("the agent online at the replica", async () => (await online(replica)) || undefined, 30_000, 250);
  assert.deepEqual(connectedUrls(), [firstUrl, replicaUrl], readFileSync(agentLog, "utf8").slice(-4000));
});
