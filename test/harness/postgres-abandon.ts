// A test process that leaves its cluster behind: with "exit" it returns
// without stopping it (the exit handler must), with "hang" it waits to be
// SIGKILLed (the kernel's pdeathsig must). Prints the cluster as JSON.
import { startPostgres } from "./postgres.js";

const mode = process.argv[2];
const cluster = await startPostgres({ fast: true });
process.stdout.write(`${JSON.stringify({ pid: cluster.pid, dataDir: cluster.dataDir, port: cluster.port })}\n`);
if (mode === "hang") setInterval(() => undefined, 1_000);
