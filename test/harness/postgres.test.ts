// The throw-away PostgreSQL clusters that store tests run against: they
// start, keep their data over a restart and a crash, and leave no process
// and no directory behind, even when the test process forgets them or dies.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { exec, waitFor } from "./exec.js";
import { findPostgres, startPostgres, type PostgresCluster } from "./postgres.js";
import { childrenOf, running } from "./postgres-procs.js";

const found = findPostgres();
const skip = "skip" in found ? found.skip : false;

describe("throw-away PostgreSQL clusters", { skip }, () => {
  const clusters: PostgresCluster[] = [];
  after(async () => {
    for (const cluster of clusters) await cluster.stop();
  });

  async function start(options: Parameters<typeof startPostgres>[0] = {}): Promise<PostgresCluster> {
    const cluster = await startPostgres(options);
    clusters.push(cluster);
    return cluster;
  }

  test("starts on its own loopback port, durable unless asked to be fast", async () => {
    const durable = await start();
    assert.match(durable.url, /^postgres:\/\/ferry@127\.0\.0\.1:\d+\/postgres$/);
    assert.equal(durable.url, `postgres://ferry@127.0.0.1:${durable.port}/postgres`);
    assert.equal((await durable.psql("SELECT 1 + 1")).trim(), "2");
    assert.equal((await durable.psql("SHOW fsync; SHOW synchronous_commit; SHOW max_connections; SHOW listen_addresses")).trim(), "on\non\n200\n127.0.0.1");
    assert.equal((await durable.psql("SHOW server_encoding")).trim(), "UTF8");

    const fast = await start({ fast: true });
    assert.notEqual(fast.port, durable.port);
    assert.equal((await fast.psql("SHOW fsync; SHOW synchronous_commit")).trim(), "off\noff");
  });

  test("a cluster of its own initdb works as one copied from the template", async () => {
    const cluster = await start({ fromTemplate: false, fast: true });
    assert.equal((await cluster.psql("SELECT current_user")).trim(), "ferry");
  });

  test("createDatabase gives a new database's URL and refuses names that are not plain", async () => {
    const cluster = await start({ fast: true });
    const url = await cluster.createDatabase("store_test_1");
    assert.equal(url, `postgres://ferry@127.0.0.1:${cluster.port}/store_test_1`);
    assert.equal((await cluster.psql("SELECT current_database()", "store_test_1")).trim(), "store_test_1");
    await assert.rejects(cluster.createDatabase('x"; DROP DATABASE postgres; --'), /not a database name/);
    await assert.rejects(cluster.createDatabase(""), /not a database name/);
    await assert.rejects(cluster.createDatabase("a".repeat(64)), /not a database name/);
  });

  test("restart keeps the data, on the same port", async () => {
    const cluster = await start();
    await cluster.psql("CREATE TABLE kept (id int PRIMARY KEY, note text); INSERT INTO kept VALUES (1, 'before restart')");
    const { port, pid } = cluster;
    await cluster.restart();
    assert.equal(cluster.port, port);
    assert.notEqual(cluster.pid, pid);
    assert.equal(running(pid as number), false);
    assert.equal((await cluster.psql("SELECT note FROM kept WHERE id = 1")).trim(), "before restart");
  });

  test("kill leaves no backend; start recovers every committed row", async () => {
    const cluster = await start();
    await cluster.psql("CREATE TABLE crash (id int); INSERT INTO crash SELECT generate_series(1, 1000)");
    const pid = cluster.pid as number;
    const backends = childrenOf(pid);
    assert.ok(backends.length > 0, "a postmaster has its background processes");
    await cluster.kill();
    assert.equal(cluster.pid, undefined);
    assert.deepEqual([pid, ...backends].filter(running), []);
    assert.equal((await exec(["pg_isready", "-h", "127.0.0.1", "-p", String(cluster.port)])).code === 0, false);
    await cluster.start();
    assert.equal((await cluster.psql("SELECT count(*) FROM crash")).trim(), "1000");
    assert.match(cluster.logTail(200), /database system was interrupted|not properly shut down/);
  });

  test("shutdown keeps the database down until start", async () => {
    const cluster = await start({ fast: true });
    await cluster.shutdown();
    assert.equal(cluster.pid, undefined);
    await assert.rejects(cluster.psql("SELECT 1"));
    await cluster.start();
    assert.equal((await cluster.psql("SELECT 1")).trim(), "1");
  });

  test("stop leaves no process and no directory", async () => {
    const cluster = await start({ fast: true });
    const pid = cluster.pid as number;
    const processes = [pid, ...childrenOf(pid)];
    await cluster.stop();
    assert.deepEqual(processes.filter(running), []);
    assert.equal(existsSync(cluster.dataDir), false);
    await cluster.stop();
    await assert.rejects(cluster.start(), /was stopped/);
  });

  test("a test process that forgets its cluster stops it on exit; one killed takes its postmaster along", async () => {
    const script = fileURLToPath(new URL("./postgres-abandon.ts", import.meta.url));
    const forgetful = await exec([process.execPath, "--import", "tsx", script, "exit"], { timeoutMs: 60_000 });
    assert.equal(forgetful.code, 0, forgetful.stderr);
    const left = JSON.parse(forgetful.stdout) as { pid: number; dataDir: string };
    assert.equal(running(left.pid), false);
    assert.equal(existsSync(left.dataDir), false);

    const child = spawn(process.execPath, ["--import", "tsx", script, "hang"], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    const killed = await waitFor(
      "the abandoned cluster",
      () => (out.includes("\n") ? (JSON.parse(out) as { pid: number; dataDir: string }) : undefined),
      60_000,
      50,
    );
    const backends = childrenOf(killed.pid);
    child.kill("SIGKILL");
    await waitFor(
      "the postmaster and its backends to die with their test process",
      () => [killed.pid, ...backends].every((pid) => !running(pid)) || undefined,
      20_000,
      50,
    );
    // The next cluster started anywhere removes the directory left behind.
    await start({ fast: true });
    assert.equal(existsSync(killed.dataDir), false);
  });
});
