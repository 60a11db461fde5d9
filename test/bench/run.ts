// `npm run bench`: every benchmark, one after another; `npm run bench -- NAME…`
// only those named (agents, bundle, cache, tls). Not a test: it prints figures and writes
// test/bench/RESULTS.md.
import { runAgentsBench } from "./agents.bench.js";
import { runBundleBench } from "./bundle.bench.js";
import { runCacheBench } from "./cache.bench.js";
import { runTlsBench } from "./tls.bench.js";

const BENCHES: Record<string, () => Promise<void>> = { agents: runAgentsBench, bundle: runBundleBench, cache: runCacheBench, tls: runTlsBench };
const chosen = process.argv.slice(2);
const unknown = chosen.filter((name) => !(name in BENCHES));
if (unknown.length > 0) {
  process.stderr.write(`unknown bench ${unknown.join(", ")}: choose from ${Object.keys(BENCHES).join(", ")}\n`);
  process.exit(2);
}
for (const name of chosen.length > 0 ? chosen : Object.keys(BENCHES)) await (BENCHES[name] as () => Promise<void>)();
