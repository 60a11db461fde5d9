// Benchmark (not a test): Ferry's built-in binary cache against Debian's nginx
// serving the same cache directory, on loopback, in one run:
// - NAR throughput over 1 and 8 connections (wrk cycling through every NAR),
//   and the ceiling of user-space Node (a bare file→socket copy, best chunk
//   size of several) since Node has no sendfile;
// - narinfo request rate and p99 latency, hits and misses (wrk -t2 -c32);
// - `nix-store --realise` of the closure into an empty private store from each;
// - `ferry cache push` against `nix copy --to file://DIR?compression=zstd`.
// Needs nginx and wrk (`bash test/setup.sh --bench` installs them). Every
// step is bounded in time. Writes its section of test/bench/RESULTS.md.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { exec, mustExec, waitFor } from "../harness/exec.js";
import { FERRY_BIN } from "../harness/paths.js";
import { freePort } from "../harness/ports.js";
import { writeResultsSection } from "./results.js";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const COUNT = Number(process.env["BENCH_PATHS"] ?? 300);
const TOTAL_MIB = Number(process.env["BENCH_MIB"] ?? 512);
const RUNS = Number(process.env["BENCH_RUNS"] ?? 3);
const WRK_SECONDS = Number(process.env["BENCH_WRK_SECONDS"] ?? 5);
const NGINX = ["/usr/sbin/nginx", "nginx"].find((bin) => bin.startsWith("/") && existsExecutable(bin)) ?? "nginx";
const CEILING_CHUNKS = [64 * 1024, 256 * 1024, 1024 * 1024, 4 * 1024 * 1024];
const NIX = ["nix", "--extra-experimental-features", "nix-command"];

function existsExecutable(file: string): boolean {
  try {
    return (statSync(file).mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};
const fmt = (n: number, digits = 2): string => n.toFixed(digits);
const load = (): string =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(", ");

async function timed(argv: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 600_000): Promise<number> {
  const started = performance.now();
  const result = await exec(argv, { env, timeoutMs });
  if (result.code !== 0) throw new Error(`${argv.join(" ")} exited ${result.code}:\n${result.stderr.slice(-3000)}`);
  return (performance.now() - started) / 1000;
}

interface Controller {
  httpPort: number;
  grpc: string;
  cacheDir: string;
  tokenFile: string;
  stop(): void;
}

async function startController(dir: string): Promise<Controller> {
  const log = join(dir, "controller.log");
  const child = spawn(process.execPath, [FERRY_BIN, "controller", "--data-dir", join(dir, "data"), "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0"], {
    stdio: ["ignore", openSync(log, "a"), openSync(log, "a")],
    env: { ...process.env, FERRY_LOG_LEVEL: "info" },
  });
  const started = await waitFor(
    "bench controller",
    () => {
      const line = readFileSync(log, "utf8")
        .split("\n")
        .find((l) => l.includes('"controller started"'));
      return line ? (JSON.parse(line) as { httpPort: number; grpcPort: number }) : undefined;
    },
    20_000,
    50,
  );
  return {
    httpPort: started.httpPort,
    grpc: `127.0.0.1:${started.grpcPort}`,
    cacheDir: join(dir, "data", "cache"),
    tokenFile: join(dir, "data", "admin.token"),
    stop: () => child.kill("SIGKILL"),
  };
}

/** A server started here, stopped by pid at the end. */
async function startServer(argv: string[], port: () => number | undefined, what: string): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(argv[0] as string, argv.slice(1), { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout?.on("data", (chunk: Buffer) => (out += chunk.toString()));
  const found = await waitFor(what, () => port() ?? (/^(\d+)$/m.exec(out) ? Number(/^(\d+)$/m.exec(out)?.[1]) : undefined), 10_000, 50);
  return { port: found, child };
}

async function startNginx(work: string, cacheDir: string): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const prefix = join(work, "nginx");
  mkdirSync(join(prefix, "logs"), { recursive: true });
  writeFileSync(join(prefix, "nix-cache-info"), "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n");
  // As the NixOS module's nginx option configures it (nix/modules/controller.nix), minus TLS.
  writeFileSync(
    join(prefix, "nginx.conf"),
    `user root;
worker_processes auto;
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path ${prefix}/tmp;
  server {
    listen 127.0.0.1:${port};
    location = /cache/nix-cache-info { alias ${prefix}/nix-cache-info; default_type text/x-nix-cache-info; }
    location ~ "^/cache/([0-9a-z]{32}\\.narinfo|nar/[0-9a-z]{52}\\.nar(\\.[a-z0-9]+)?)$" {
      alias ${cacheDir}/$1;
      limit_except GET { deny all; }
      types { text/x-nix-narinfo narinfo; }
      default_type application/x-nix-nar;
    }
    location /cache/ { return 404; }
  }
}
`,
  );
  const child = spawn(NGINX, ["-p", prefix, "-c", join(prefix, "nginx.conf"), "-g", "daemon off;"], { stdio: "inherit" });
  await waitFor(
    "nginx",
    async () => ((await fetch(`http://127.0.0.1:${port}/cache/nix-cache-info`).catch(() => undefined))?.ok ? true : undefined),
    10_000,
    50,
  );
  return { port, child };
}

/** A bare Node file→socket server: the most user-space Node can do without sendfile, at one chunk size. */
const CEILING_SERVER = `
import { createServer } from "node:http"; import { createReadStream, stat } from "node:fs";
const [root, chunk] = [process.argv[1], Number(process.argv[2])];
const server = createServer((req, res) => {
  const file = root + "/" + decodeURIComponent(req.url.slice("/cache/".length));
  stat(file, (error, info) => {
    if (error) return res.writeHead(404).end();
    res.writeHead(200, { "content-length": info.size });
    createReadStream(file, { highWaterMark: chunk }).pipe(res);
  });
}).listen(0, "127.0.0.1", () => console.log(server.address().port));`;

interface WrkResult {
  requestsPerSecond: number;
  mibPerSecond: number;
  p99Ms: number;
}

const UNIT: Record<string, number> = { B: 1 / 1048576, KB: 1 / 1024, MB: 1, GB: 1024, TB: 1024 * 1024 };
const TIME_UNIT: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

async function wrk(work: string, base: string, paths: string[], threads: number, connections: number, expect404 = false): Promise<WrkResult> {
  const script = join(work, `wrk-${Math.random().toString(36).slice(2)}.lua`);
  writeFileSync(
    script,
    `local paths = { ${paths.map((p) => JSON.stringify(p)).join(", ")} }
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
`,
  );
  const out = await mustExec(["wrk", `-t${threads}`, `-c${connections}`, `-d${WRK_SECONDS}s`, "--latency", "--timeout", "10s", "-s", script, base], {
    timeoutMs: (WRK_SECONDS + 30) * 1000,
  });
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const transfer = /Transfer\/sec:\s+([\d.]+)([KMGT]?B)/.exec(out);
  const p99 = /\s99%\s+([\d.]+)(us|ms|s|m)\b/.exec(out);
  if (!rps || !transfer || !p99) throw new Error(`cannot read wrk's output:\n${out}`);
  if (/Non-2xx or 3xx responses/.test(out) !== expect404)
    throw new Error(`wrk ${expect404 ? "expected only 404s" : "saw error responses"} from ${base}:\n${out}`);
  return {
    requestsPerSecond: Number(rps[1]),
    mibPerSecond: Number(transfer[1]) * (UNIT[transfer[2] as string] as number),
    p99Ms: Number(p99[1]) * (TIME_UNIT[p99[2] as string] as number),
  };
}

/** `nix-store --realise ROOT` into an empty store of its own, substituting only from `url`. */
async function realise(work: string, root: string, url: string, publicKey: string): Promise<number> {
  const store = mkdtempSync(join(work, "store-"));
  mkdirSync(join(store, "nix"));
  const script = [
    `mount --bind ${store}/nix /nix`,
    `nix-store --realise ${root} --option substituters '${url}' --option trusted-public-keys '${publicKey}' --option require-sigs true --option narinfo-cache-negative-ttl 0 --option narinfo-cache-positive-ttl 0 >/dev/null`,
  ].join(" && ");
  try {
    return await timed(["unshare", "-m", "sh", "-c", script], { ...process.env, XDG_CACHE_HOME: join(store, "xdg") });
  } finally {
    rmSync(store, { recursive: true, force: true });
  }
}

export async function runCacheBench(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), "ferry-cache-bench-"));
  const stops: Array<() => void> = [];
  const loads: string[] = [`start: ${load()}`];
  try {
    process.stderr.write(`building a closure of ${COUNT} paths, ${TOTAL_MIB} MiB (cached after the first run)…\n`);
    const root = (
      await mustExec(["nix-build", join(HERE, "closure.nix"), "--no-out-link", "--arg", "count", String(COUNT), "--arg", "totalMiB", String(TOTAL_MIB)], {
        timeoutMs: 900_000,
      })
    ).trim();
    const closure = (await mustExec(["nix-store", "-qR", root])).trim().split("\n");
    const keyDir = join(work, "keys");
    mkdirSync(keyDir);
    await mustExec(["nix-store", "--generate-binary-cache-key", "bench-cache-1", join(keyDir, "sec"), join(keyDir, "pub")]);
    const publicKey = readFileSync(join(keyDir, "pub"), "utf8").trim();

    // Push: each run into a fresh controller and a fresh file cache, alternating.
    const pushes: Array<{ ferry: number; nixCopy: number; nixCopySynced: number }> = [];
    let controller: Controller | undefined;
    for (let run = 1; run <= RUNS; run++) {
      const fileCache = join(work, `file-cache-${run}`);
      const nixCopy = await timed([...NIX, "copy", "--to", `file://${fileCache}?compression=zstd`, root]);
      // Ferry's cache answers 201 only once a file and its directory are on disk: the fair baseline syncs nix copy's files too.
      const syncFiles = await timed(["sh", "-c", 'find "$1" -print0 | xargs -0 sync --', "sh", fileCache]);
      rmSync(fileCache, { recursive: true, force: true });
      controller?.stop();
      const dir = mkdtempSync(join(work, "controller-"));
      controller = await startController(dir);
      const current = controller;
      stops.push(() => current.stop());
      const ferry = await timed([process.execPath, FERRY_BIN, "cache", "push", root, "--signing-key-file", join(keyDir, "sec")], {
        ...process.env,
        FERRY_CONTROLLER: current.grpc,
        FERRY_TOKEN_FILE: current.tokenFile,
      });
      pushes.push({ ferry, nixCopy, nixCopySynced: nixCopy + syncFiles });
      process.stderr.write(`push run ${run}: ferry ${fmt(ferry)} s, nix copy file:// ${fmt(nixCopy)} s, + sync of its files ${fmt(nixCopy + syncFiles)} s\n`);
    }
    loads.push(`after push: ${load()}`);
    if (!controller) throw new Error("BENCH_RUNS must be at least 1");
    const cacheDir = controller.cacheDir;
    const nars = readdirSync(join(cacheDir, "nar")).map((name) => `/cache/nar/${name}`);
    const narinfos = closure.map((path) => `/cache/${path.slice("/nix/store/".length, "/nix/store/".length + 32)}.narinfo`);
    // Same length and alphabet, a hash no path here has.
    const misses = narinfos.map((path) => `/cache/zzzz${path.slice("/cache/zzzz".length)}`);
    const narBytes = nars.reduce((sum, path) => sum + statSync(join(cacheDir, path.slice("/cache/".length))).size, 0);

    const nginx = await startNginx(work, cacheDir);
    stops.push(() => nginx.child.kill("SIGQUIT"));
    const ferryBase = `http://127.0.0.1:${controller.httpPort}`;
    const nginxBase = `http://127.0.0.1:${nginx.port}`;

    // Same bytes from both before measuring anything.
    for (const path of [nars[0] as string, narinfos[0] as string]) {
      const [a, b] = await Promise.all([fetch(ferryBase + path), fetch(nginxBase + path)].map(async (r) => Buffer.from(await (await r).arrayBuffer())));
      if (!a?.equals(b as Buffer)) throw new Error(`ferry and nginx serve different bytes for ${path}`);
    }

    const serving: Record<string, { ferry: WrkResult; nginx: WrkResult }> = {};
    for (const [name, paths, threads, connections, expect404] of [
      ["NAR, 1 connection", nars, 1, 1, false],
      ["NAR, 8 connections", nars, 2, 8, false],
      ["narinfo hits, -t2 -c32", narinfos, 2, 32, false],
      ["narinfo misses, -t2 -c32", misses, 2, 32, true],
    ] as const) {
      const ferry = await wrk(work, ferryBase, [...paths], threads, connections, expect404);
      const ngx = await wrk(work, nginxBase, [...paths], threads, connections, expect404);
      serving[name] = { ferry, nginx: ngx };
      process.stderr.write(
        `${name}: ferry ${fmt(ferry.mibPerSecond, 0)} MiB/s ${fmt(ferry.requestsPerSecond, 0)} req/s p99 ${fmt(ferry.p99Ms)} ms; nginx ${fmt(ngx.mibPerSecond, 0)} MiB/s ${fmt(ngx.requestsPerSecond, 0)} req/s p99 ${fmt(ngx.p99Ms)} ms\n`,
      );
    }
    loads.push(`after serving: ${load()}`);

    // The ceiling: bare Node copies at each chunk size; the best one counts.
    const ceiling: Array<{ chunk: number; one: number; eight: number }> = [];
    for (const chunk of CEILING_CHUNKS) {
      const server = await startServer(
        [process.execPath, "--input-type=module", "-e", CEILING_SERVER, cacheDir, String(chunk)],
        () => undefined,
        "ceiling server",
      );
      try {
        const one = await wrk(work, `http://127.0.0.1:${server.port}`, nars, 1, 1);
        const eight = await wrk(work, `http://127.0.0.1:${server.port}`, nars, 2, 8);
        ceiling.push({ chunk, one: one.mibPerSecond, eight: eight.mibPerSecond });
        process.stderr.write(
          `bare node, ${chunk / 1024} KiB reads: ${fmt(one.mibPerSecond, 0)} MiB/s (1 conn), ${fmt(eight.mibPerSecond, 0)} MiB/s (8 conn)\n`,
        );
      } finally {
        server.child.kill("SIGKILL");
      }
    }
    const bestOne = ceiling.reduce((a, b) => (b.one > a.one ? b : a));
    const bestEight = ceiling.reduce((a, b) => (b.eight > a.eight ? b : a));

    // Realise into an empty store, alternating sources.
    const realises: Array<{ ferry: number; nginx: number }> = [];
    for (let run = 1; run <= RUNS; run++) {
      const fromNginx = await realise(work, root, `${nginxBase}/cache`, publicKey);
      const fromFerry = await realise(work, root, `${ferryBase}/cache`, publicKey);
      realises.push({ ferry: fromFerry, nginx: fromNginx });
      process.stderr.write(`realise run ${run}: ferry ${fmt(fromFerry)} s, nginx ${fmt(fromNginx)} s\n`);
    }
    loads.push(`end: ${load()}`);

    const s = (name: string): { ferry: WrkResult; nginx: WrkResult } => serving[name] as { ferry: WrkResult; nginx: WrkResult };
    const one = s("NAR, 1 connection");
    const eight = s("NAR, 8 connections");
    const hits = s("narinfo hits, -t2 -c32");
    const miss = s("narinfo misses, -t2 -c32");
    const pushFerry = median(pushes.map((p) => p.ferry));
    const pushNix = median(pushes.map((p) => p.nixCopy));
    const pushNixSynced = median(pushes.map((p) => p.nixCopySynced));
    const realFerry = median(realises.map((r) => r.ferry));
    const realNginx = median(realises.map((r) => r.nginx));
    const nixVersion = (await mustExec(["nix", "--version"])).trim();
    const nginxVersion = (await exec([NGINX, "-v"])).stderr.trim();
    const rows = [
      `| NAR download, 1 connection | ${fmt(one.ferry.mibPerSecond, 0)} MiB/s | ${fmt(one.nginx.mibPerSecond, 0)} MiB/s | ${fmt(one.ferry.mibPerSecond / one.nginx.mibPerSecond)}× | ${fmt(bestOne.one, 0)} MiB/s (${bestOne.chunk / 1024} KiB reads) | ${fmt(one.ferry.mibPerSecond / bestOne.one)}× |`,
      `| NAR download, 8 connections | ${fmt(eight.ferry.mibPerSecond, 0)} MiB/s | ${fmt(eight.nginx.mibPerSecond, 0)} MiB/s | ${fmt(eight.ferry.mibPerSecond / eight.nginx.mibPerSecond)}× | ${fmt(bestEight.eight, 0)} MiB/s (${bestEight.chunk / 1024} KiB reads) | ${fmt(eight.ferry.mibPerSecond / bestEight.eight)}× |`,
      `| narinfo hits, wrk -t2 -c32 | ${fmt(hits.ferry.requestsPerSecond, 0)} req/s, p99 ${fmt(hits.ferry.p99Ms)} ms | ${fmt(hits.nginx.requestsPerSecond, 0)} req/s, p99 ${fmt(hits.nginx.p99Ms)} ms | ${fmt(hits.ferry.requestsPerSecond / hits.nginx.requestsPerSecond)}× | | |`,
      `| narinfo misses (404), wrk -t2 -c32 | ${fmt(miss.ferry.requestsPerSecond, 0)} req/s, p99 ${fmt(miss.ferry.p99Ms)} ms | ${fmt(miss.nginx.requestsPerSecond, 0)} req/s, p99 ${fmt(miss.nginx.p99Ms)} ms | ${fmt(miss.ferry.requestsPerSecond / miss.nginx.requestsPerSecond)}× | | |`,
      `| \`nix-store --realise\` into an empty store (median of ${RUNS}) | ${fmt(realFerry)} s | ${fmt(realNginx)} s | ${fmt(realFerry / realNginx)}× slower | | |`,
      `| push (median of ${RUNS}) | \`ferry cache push\` ${fmt(pushFerry)} s | \`nix copy --to file://…?compression=zstd\` ${fmt(pushNix)} s | ${fmt(pushFerry / pushNix)}× slower | | |`,
      `| push, against a durable copy (median of ${RUNS}) | \`ferry cache push\` ${fmt(pushFerry)} s | the same \`nix copy\`, then \`sync\` of every file and directory it wrote ${fmt(pushNixSynced)} s | ${fmt(pushFerry / pushNixSynced)}× slower | | |`,
    ];
    const body = `Command: \`BENCH_RUNS=${RUNS} npm run bench -- cache\` (runs \`node --import tsx test/bench/run.ts cache\`; \`BENCH_PATHS\`, \`BENCH_MIB\`, \`BENCH_RUNS\`, \`BENCH_WRK_SECONDS\` override 300, 512, 3, 5).

- Machine: ${cpus().length} × ${cpus()[0]?.model.trim() ?? "?"}, ${fmt(totalmem() / 2 ** 30, 1)} GiB RAM; ${nixVersion}; ${nginxVersion}; Node ${process.version}; run ${new Date().toISOString()}.
- Load average (1, 5, 15 min; other work shares these cores): ${loads.join("; ")}.
- Closure: ${closure.length} store paths (test/bench/closure.nix: incompressible data), ${fmt(narBytes / 2 ** 20, 1)} MiB of zstd NARs as pushed; NAR figures cycle through all ${nars.length} NARs, narinfo figures through all ${narinfos.length} narinfos (misses: the same names with another hash).
- nginx: Debian's, \`sendfile on\`, \`worker_processes auto\`, the locations of the NixOS module's \`nginx.enable\`, serving the directory Ferry's controller wrote. Ferry: \`ferry controller\` with its defaults. Both on 127.0.0.1, measured with \`wrk --latency\` for ${WRK_SECONDS} s each.
- Ceiling: a bare Node \`http\` server piping \`createReadStream(file, { highWaterMark })\` into the response, for ${CEILING_CHUNKS.map((c) => `${c / 1024} KiB`).join(", ")}; the best is shown.
- Realise: \`unshare -m sh -c 'mount --bind FRESH/nix /nix && nix-store --realise ROOT --option substituters URL --option require-sigs true …'\`, alternating nginx and Ferry.
- Push: a fresh controller per run; \`ferry cache push ROOT --signing-key-file K\` (zstd level 3, 4 uploads at once) against \`nix copy --to 'file://FRESH?compression=zstd' ROOT\` (unsynced, and followed by \`sync\` of every file and directory it wrote, which is what the controller does before it answers 201), alternating.

| what | Ferry | nginx / nix copy | ratio | user-space Node ceiling | Ferry / ceiling |
|---|---|---|---|---|---|
${rows.join("\n")}

Runs: push ${pushes.map((p) => `${fmt(p.ferry)}/${fmt(p.nixCopy)}/${fmt(p.nixCopySynced)}`).join(", ")} s (Ferry/nix copy/nix copy + sync); realise ${realises.map((r) => `${fmt(r.ferry)}/${fmt(r.nginx)}`).join(", ")} s (Ferry/nginx); ceiling 1 conn ${ceiling.map((c) => `${c.chunk / 1024} KiB ${fmt(c.one, 0)}`).join(", ")} MiB/s, 8 conn ${ceiling.map((c) => `${c.chunk / 1024} KiB ${fmt(c.eight, 0)}`).join(", ")} MiB/s.
`;
    process.stdout.write(`\n${body}\n`);
    writeResultsSection(join(HERE, "RESULTS.md"), "## Cache: Ferry's built-in cache vs nginx on the same directory", body);
  } finally {
    for (const stop of stops.reverse()) {
      try {
        stop();
      } catch {
        // already gone
      }
    }
    rmSync(work, { recursive: true, force: true });
  }
}
