// `npm run bench`: every benchmark, one after another. Not a test: it prints
// figures and writes test/bench/RESULTS.md.
import { runBundleBench } from "./bundle.bench.js";
import { runTlsBench } from "./tls.bench.js";

await runBundleBench();
await runTlsBench();
