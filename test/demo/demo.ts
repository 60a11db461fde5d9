// `npm run demo`: a controller, two simulated NixOS hosts (each its own
// network namespace and /nix), two generations deployed with the real CLI.
import { Fleet } from "../harness/fleet.js";
import { buildFixtureSystem } from "../harness/fixtures.js";
import { waitFor } from "../harness/exec.js";

const HOSTS = ["web-1", "web-2"];

function say(text: string): void {
  process.stdout.write(`\n\x1b[1m== ${text}\x1b[0m\n`);
}

async function show(fleet: Fleet, args: string[]): Promise<void> {
  process.stdout.write(`$ ferry ${args.join(" ")}\n`);
  const result = await fleet.cli(args, 180_000);
  process.stdout.write(result.stderr + result.stdout);
  if (result.code !== 0) throw new Error(`ferry ${args[0]} failed`);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    process.stderr.write("The demo simulates hosts with network and mount namespaces: run it as root.\n");
    process.exit(1);
  }
  say("Starting a controller (SQLite state, built-in binary cache, agent WebSocket, operator gRPC)");
  const fleet = await Fleet.start("demo");
  const cleanup = async () => {
    await fleet.close();
  };
  process.once("SIGINT", () => void cleanup().then(() => process.exit(130)));
  try {
    process.stdout.write(`controller: agents and cache on :${fleet.controller.httpPort}, operator API on ${fleet.controller.address}\n`);
    process.stdout.write(`signing key: ${fleet.key.publicKey}\n`);

    say("Building two generations of a fixture NixOS system per host with Nix");
    const systems = new Map<string, string[]>();
    for (const name of HOSTS) {
      systems.set(name, [await buildFixtureSystem(name, 1), await buildFixtureSystem(name, 2)]);
      process.stdout.write(`${name}: ${systems.get(name)?.join("\n       ")}\n`);
    }

    say("Pushing the closures to the controller's cache, signed");
    await show(fleet, ["cache", "push", ...[...systems.values()].flat(), "--signing-key-file", fleet.key.secretFile]);

    say("Registering two hosts and starting their agents (each in its own namespace)");
    for (const name of HOSTS) {
      await fleet.addHost(name, { tags: ["web"] });
      process.stdout.write(`${name}: agent started in network namespace ${fleet.host(name).netns}, address ${fleet.host(name).address}\n`);
    }
    await waitFor("agents online", async () => {
      const status = (await fleet.mustCli(["status", "--json"])).json<{ hosts: { online: boolean }[] }>();
      return status.hosts.every((host) => host.online) || undefined;
    });
    await show(fleet, ["host", "list"]);

    for (const generation of [1, 2]) {
      say(`Deploying generation ${generation}`);
      await show(fleet, ["deploy", ...HOSTS.map((name) => `${name}=${systems.get(name)?.[generation - 1]}`), "--wait", "--timeout", "120"]);
      await show(fleet, ["status"]);
    }

    say("Deploying a generation 3 whose activation fails on web-2: web-2 rolls itself back");
    const third = [await buildFixtureSystem("web-1", 3), await buildFixtureSystem("web-2", 3, "fail-activation")];
    await fleet.push(third);
    process.stdout.write(`$ ferry deploy web-1=… web-2=… --wait\n`);
    const failed = await fleet.cli(["deploy", `web-1=${third[0]}`, `web-2=${third[1]}`, "--wait", "--timeout", "120"], 180_000);
    process.stdout.write(failed.stderr);
    process.stdout.write(`(exit status ${failed.code}: deploy --wait fails when a host does not confirm)\n`);
    await show(fleet, ["status"]);

    say("What happened on each host");
    for (const name of HOSTS) {
      const host = fleet.host(name);
      process.stdout.write(`${name}:\n  /run/current-system -> ${host.currentSystem()}\n  system profile      -> ${host.profileSystem()}\n`);
      for (const [action, system] of host.switchCalls()) process.stdout.write(`  switch-to-configuration ${action}  ${system}\n`);
      const hello = await host.run([`${host.currentSystem()}/sw/bin/hello`]);
      process.stdout.write(`  ${hello.stdout.trim()}\n`);
    }
    say("Done; removing the namespaces and stores");
  } finally {
    await cleanup();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
