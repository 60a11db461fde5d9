// `npm run bench`: every benchmark, one after another; `npm run bench -- NAME…`
// only those named (agents, bundle, cache, tls); `--name VALUE` sets BENCH_NAME. Not a test: it prints figures and writes
// test/bench/RESULTS.md.
import { runAgentsBench } from "./agents.bench.js";
import { runBundleBench } from "./bundle.bench.js";
import { runCacheBench } from "./cache.bench.js";
import { runTlsBench } from "./tls.bench.js";

const BENCHES: Record<string, () => Promise<void>> = { agents: runAgentsBench, bundle: runBundleBench, cache: runCacheBench, tls: runTlsBench };
// Options after the names, `--replicas 2`, are the environment's BENCH_REPLICAS=2.
const chosen: string[] = [];
for (const args = process.argv.slice(2); args.length > 0;) {
  const arg = args.shift() as string;
  const option = /^--([a-z][a-z-]*)$/.exec(arg)?.[1];
  if (option === undefined) chosen.push(arg);
  else if (args.length === 0) {
    process.stderr.write(`${arg} needs a value\n`);
    process.exit(2);
  } else process.env[`BENCH_${option.replace(/-/g, "_").toUpperCase()}`] = args.shift();
}
const unknown = chosen.filter((name) => !(name in BENCHES));
if (unknown.length > 0) {
  process.stderr.write(`unknown bench ${unknown.join(", ")}: choose from ${Object.keys(BENCHES).join(", ")}\n`);
  process.exit(2);
}
for (const name of chosen.length > 0 ? chosen : Object.keys(BENCHES)) await (BENCHES[name] as () => Promise<void>)();
