/**
 * The `ferry-agent` program: `ferry agent`, started the way a resident agent
 * should run. It loads only the agent (not the CLI's verb table, gRPC or the
 * controller), and its launcher (bin/ferry-agent.js, or the Nix package's
 * wrapper) starts Node with --lite-mode: V8 without its optimising
 * compilers, which an agent that sleeps between heartbeats never needs, for
 * about 10 MiB less resident memory (test/bench/RESULTS.md, agents). Lite
 * mode has no WebAssembly either, so nothing the agent loads may need it
 * (its HTTP client is node:http, not undici: http-request.ts).
 */
import { reportError } from "./output.js";
import { runAgent } from "./commands/agent-run.js";

const argv = process.argv.slice(2);

async function run(): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    const [{ verbHelp }, { AGENT }] = await Promise.all([import("./help.js"), import("./spec/local.js")]);
    process.stdout.write(
      `ferry-agent is \`ferry agent\` with Node settings for a long-running, mostly idle process: it takes the flags below; the verbs listed run as \`ferry agent VERB\`.\n\n${verbHelp(AGENT)}`,
    );
    return 0;
  }
  return runAgent(argv);
}

run()
  .catch((error: unknown) => reportError(error, argv.includes("--json")))
  .then((code) => {
    process.exitCode = code;
  });
