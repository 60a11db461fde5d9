// A fleet to watch rollouts by hand (in tmux, at several widths): a
// controller and eight simulated hosts, three releases pushed to the cache,
// and a shell file with what the CLI needs. Runs until Ctrl-C or SIGTERM,
// then removes everything. As root, after `npm run build`:
//
//   node --import tsx test/demo/rollout-fleet.ts /tmp/fleet.env
//   . /tmp/fleet.env   # FERRY_CONTROLLER, FERRY_TOKEN_FILE, $GOOD, $MIXED, $SLOW
//   ferry rollout start --manifest "$GOOD" --canary 1 --batch 3 --pause 20s --wait
//
// GOOD: every host healthy. MIXED, for a wave that aborts and reverts with
// hosts in every state at once: web-2 fails its health check (after the 8 s
// confirm timeout), db-2's switch hangs until the agent kills it (20 s), the
// others are healthy. SLOW: every host takes 3 s to switch.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Fleet } from "../harness/fleet.js";
import { buildFixtureSystem, type FixtureBehaviour } from "../harness/fixtures.js";
import { allOnline } from "../harness/status.js";
import { FERRY_BIN } from "../harness/paths.js";

const HEALTH_CHECK = { type: "command", argv: ["/bin/sh", "-c", 'test "$(cat /run/fixture-health 2>/dev/null || echo ok)" = ok'], timeout: 5 };
const HOSTS = ["web-1", "web-2", "web-3", "web-4", "web-5", "web-6", "db-1", "db-2"];

async function release(fleet: Fleet, generation: number, behaviour: (host: string) => FixtureBehaviour): Promise<string> {
  const paths: Record<string, string> = {};
  for (const host of HOSTS) paths[host] = await buildFixtureSystem(host, generation, behaviour(host));
  await fleet.push(Object.values(paths));
  const file = join(fleet.dir, `manifest-${generation}.json`);
  writeFileSync(file, JSON.stringify({ hosts: paths }));
  return file;
}

async function main(): Promise<void> {
  const envFile = process.argv[2];
  if (!envFile || process.getuid?.() !== 0) {
    process.stderr.write("usage (as root): node --import tsx test/demo/rollout-fleet.ts ENV_FILE\n");
    process.exit(2);
  }
  const fleet = await Fleet.start("rollout-fleet");
  let closing = false;
  const close = () => {
    if (closing) return;
    closing = true;
    void fleet.close().then(() => process.exit(0));
  };
  process.on("SIGINT", close);
  process.on("SIGTERM", close);
  for (const host of HOSTS)
    await fleet.addHost(host, { tags: [host.replace(/-\d+$/, "")], agentConfig: { confirmTimeout: 8, activationTimeout: 20, healthChecks: [HEALTH_CHECK] } });
  await allOnline(fleet);
  const good = await release(fleet, 1, () => "ok");
  const mixed = await release(fleet, 2, (host) => (host === "web-2" ? "fail-health" : host === "db-2" ? "hang" : "ok"));
  const slow = await release(fleet, 3, () => "slow");
  const lines = Object.entries({ ...fleet.env, GOOD: good, MIXED: mixed, SLOW: slow }).map(([key, value]) => `export ${key}='${value}'`);
  lines.push(`ferry() { node '${FERRY_BIN}' "$@"; }`);
  writeFileSync(envFile, `${lines.join("\n")}\n`);
  process.stdout.write(`ready: . ${envFile}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`rollout fleet failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
