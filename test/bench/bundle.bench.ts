// Benchmark (not a timing test): `ferry bundle create` + `ferry bundle import`
// into a fresh controller, against `nix-store --export | nix-store --import`
// into a fresh store, with and without a final `sync` (a site's import must be
// durable, so the synced one is the fair baseline). Two closures: the
// incompressible closure.nix and realistic.nix (files of this machine's
// /usr/lib and /usr/share). Wall time is measured here; peak memory (max RSS
// of the command's process tree) by /usr/bin/time -v. Writes test/bench/RESULTS.md.
import { spawn } from "node:child_process";
import { lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem, tmpdir } from "node:os";
import { writeResultsSection } from "./results.js";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { exec, mustExec, waitFor } from "../harness/exec.js";
import { FERRY_BIN } from "../harness/paths.js";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const COUNT = Number(process.env["BENCH_PATHS"] ?? 300);
const TOTAL_MIB = Number(process.env["BENCH_MIB"] ?? 512);
const RUNS = Number(process.env["BENCH_RUNS"] ?? 3);
const TIME = "/usr/bin/time";
const MIB = 2 ** 20;

interface Measured {
  seconds: number;
  maxRssMiB: number;
}

interface Row {
  run: number;
  load: string;
  baseline: Measured;
  baselineSync: Measured;
  create: Measured;
  import: Measured;
  controllerMiB: number;
  bundleBytes: number;
}

interface ClosureResult {
  name: string;
  description: string;
  paths: number;
  narBytes: number;
  exportBytes: number;
  rows: Row[];
}

/** Runs argv under /usr/bin/time -v; wall time from here, max RSS from time. */
async function measure(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<Measured> {
  const started = performance.now();
  const result = await exec([TIME, "-v", ...argv], { env, timeoutMs: 900_000 });
  const seconds = (performance.now() - started) / 1000;
  if (result.code !== 0) throw new Error(`${argv.join(" ")} exited ${result.code}:\n${result.stderr.slice(-3000)}`);
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(result.stderr);
  return { seconds, maxRssMiB: rss ? Number(rss[1]) / 1024 : NaN };
}

/** A fresh controller of our own, so its pid (and peak memory) is known. */
async function startController(dir: string): Promise<{ grpc: string; stop: () => void; hwmMiB: () => number }> {
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
      return line ? (JSON.parse(line) as { grpcPort: number }) : undefined;
    },
    20_000,
    50,
  );
  return {
    grpc: `127.0.0.1:${started.grpcPort}`,
    stop: () => child.kill("SIGKILL"),
    hwmMiB: () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"))?.[1] ?? NaN) / 1024,
  };
}

function fmt(n: number, digits = 2): string {
  return n.toFixed(digits);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

/** Regular files of /usr/lib and /usr/share, every k-th in sorted order so that they add up to about `mib`, dealt round-robin to `count` lists. */
function writeRealisticLists(dir: string, count: number, mib: number): void {
  const files: { path: string; size: number }[] = [];
  const walk = (path: string): void => {
    let entries: string[];
    try {
      entries = readdirSync(path).sort();
    } catch {
      return;
    }
    for (const name of entries) {
      const full = join(path, name);
      // Names a shell `read` or Nix would mangle are left out.
      if (!/^[A-Za-z0-9._+@,=:-]+$/.test(name)) continue;
      let stat;
      try {
        stat = lstatSync(full);
      } catch {
        continue;
      }
      if (stat.isDirectory()) walk(full);
      else if (stat.isFile() && stat.size > 0 && stat.size < 64 * MIB && (stat.mode & 0o444) === 0o444) files.push({ path: full, size: stat.size });
    }
  };
  walk("/usr/lib");
  walk("/usr/share");
  const total = files.reduce((sum, file) => sum + file.size, 0);
  const stride = Math.max(1, Math.floor(total / (mib * MIB)));
  const lists: string[][] = Array.from({ length: count }, () => []);
  let picked = 0;
  for (let i = 0; i < files.length; i += stride) {
    (lists[picked % count] as string[]).push((files[i] as { path: string }).path);
    picked++;
  }
  mkdirSync(dir, { recursive: true });
  lists.forEach((list, index) => writeFileSync(join(dir, `list-${index}`), list.map((path) => `${path}\n`).join("")));
}

async function build(argv: string[]): Promise<string> {
  return (await mustExec(["nix-build", ...argv, "--no-out-link", "--option", "substituters", ""], { timeoutMs: 900_000 })).trim();
}

async function benchClosure(
  work: string,
  name: string,
  description: string,
  root: string,
  key: { secretFile: string; publicKey: string },
): Promise<ClosureResult> {
  const paths = (await mustExec(["nix-store", "--query", "--requisites", root])).split("\n").filter(Boolean);
  const info = JSON.parse(await mustExec(["nix", "--extra-experimental-features", "nix-command", "path-info", "--json", "--recursive", root])) as {
    narSize: number;
  }[];
  const narBytes = info.reduce((sum, entry) => sum + entry.narSize, 0);
  const exportBytes = Number((await mustExec(["sh", "-c", `nix-store --export $(nix-store -qR ${root}) | wc -c`], { timeoutMs: 600_000 })).trim());
  const hosts = join(work, `${name}-hosts.json`);
  writeFileSync(hosts, JSON.stringify({ hosts: { "bench-host": root } }));
  const rows: Row[] = [];
  for (let run = 1; run <= RUNS; run++) {
    const baselineInto = async (synced: boolean): Promise<Measured> => {
      const store = join(work, `store-${name}-${run}-${synced ? "s" : "n"}`);
      mkdirSync(join(store, "nix"), { recursive: true });
      await mustExec(["sync"]);
      const script = `nix-store --export $(nix-store -qR ${root}) | unshare -m sh -c 'mount --bind ${store}/nix /nix && nix-store --import >/dev/null${synced ? " && sync" : ""}'`;
      const measured = await measure(["sh", "-c", script]);
      rmSync(store, { recursive: true, force: true });
      return measured;
    };
    const load = loadavg()
      .map((value) => value.toFixed(1))
      .join(" ");
    const baseline = await baselineInto(false);
    const baselineSync = await baselineInto(true);

    const site = join(work, `site-${name}-${run}`);
    mkdirSync(site, { recursive: true });
    const controller = await startController(site);
    writeFileSync(join(site, "data", "bundle-trusted-keys"), `${key.publicKey}\n`);
    const bundle = join(work, `${name}-${run}.ferry`);
    await mustExec(["sync"]);
    const create = await measure([process.execPath, FERRY_BIN, "bundle", "create", "--manifest", hosts, "-o", bundle, "--signing-key-file", key.secretFile]);
    const bundleBytes = statSync(bundle).size;
    await mustExec(["sync"]);
    const imported = await measure([process.execPath, FERRY_BIN, "bundle", "import", bundle, "--trusted-key", key.publicKey], {
      ...process.env,
      FERRY_CONTROLLER: controller.grpc,
      FERRY_TOKEN_FILE: join(site, "data", "admin.token"),
    });
    const controllerMiB = controller.hwmMiB();
    controller.stop();
    rmSync(site, { recursive: true, force: true });
    rmSync(bundle, { force: true });
    rows.push({ run, load, baseline, baselineSync, create, import: imported, controllerMiB, bundleBytes });
    const ours = create.seconds + imported.seconds;
    process.stderr.write(
      `${name} run ${run} (load ${load}): export|import ${fmt(baseline.seconds)} s, +sync ${fmt(baselineSync.seconds)} s; create ${fmt(create.seconds)} s + import ${fmt(imported.seconds)} s = ${fmt(ours)} s; bundle ${fmt(bundleBytes / MIB, 1)} MiB vs export ${fmt(exportBytes / MIB, 1)} MiB\n`,
    );
  }
  return { name, description, paths: paths.length, narBytes, exportBytes, rows };
}

function section(result: ClosureResult): { text: string; verdicts: string[] } {
  const { rows } = result;
  const ours = (r: Row): number => r.create.seconds + r.import.seconds;
  const base = median(rows.map((r) => r.baseline.seconds));
  const baseSync = median(rows.map((r) => r.baselineSync.seconds));
  const oursMed = median(rows.map(ours));
  const bundleMed = median(rows.map((r) => r.bundleBytes));
  const sizeRatio = bundleMed / result.exportBytes;
  const peak = Math.max(...rows.flatMap((r) => [r.create.maxRssMiB, r.import.maxRssMiB]));
  const controllerPeak = Math.max(...rows.map((r) => r.controllerMiB));
  const table = rows
    .map(
      (r) =>
        `| ${r.run} | ${r.load} | ${fmt(r.baseline.seconds)} | ${fmt(r.baselineSync.seconds)} | ${fmt(r.create.seconds)} | ${fmt(r.import.seconds)} | ${fmt(ours(r))} | ${fmt(ours(r) / r.baseline.seconds)} | ${fmt(ours(r) / r.baselineSync.seconds)} | ${fmt(r.bundleBytes / MIB, 1)} | ${fmt(r.bundleBytes / result.exportBytes)} | ${fmt(r.baseline.maxRssMiB, 0)} | ${fmt(r.create.maxRssMiB, 0)} | ${fmt(r.import.maxRssMiB, 0)} | ${fmt(r.controllerMiB, 0)} |`,
    )
    .join("\n");
  const timeVerdict = oursMed / baseSync <= 1.2 ? "met" : "missed";
  const memVerdict = peak < 256 ? "met" : "missed";
  const verdicts = [
    `${result.name}: create+import / synced baseline ${fmt(oursMed / baseSync)} (≤ 1.20: ${timeVerdict})`,
    `peak RSS ${fmt(peak, 0)} MiB (< 256: ${memVerdict})`,
  ];
  if (result.name === "realistic") verdicts.push(`bundle / export ${fmt(sizeRatio)} (≤ 0.50: ${sizeRatio <= 0.5 ? "met" : "missed"})`);
  const text = `### ${result.name}: ${result.description}

${result.paths} store paths, ${fmt(result.narBytes / MIB, 1)} MiB of NARs; \`nix-store --export\` stream ${fmt(result.exportBytes / MIB, 1)} MiB.

| run | load (1/5/15 min) | export\\|import s | export\\|import+sync s | create s | import s | create+import s | ÷ export\\|import | ÷ export\\|import+sync | bundle MiB | bundle ÷ export | export\\|import MiB | create MiB | import MiB | controller MiB |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
${table}

Medians: export|import ${fmt(base)} s, export|import+sync ${fmt(baseSync)} s, create+import ${fmt(oursMed)} s: **${fmt(oursMed / base)}×** the unsynced and **${fmt(oursMed / baseSync)}×** the synced baseline (target ≤ 1.20: ${timeVerdict}); bundle **${fmt(sizeRatio)}×** the export size; peak RSS of create/import **${fmt(peak, 0)} MiB** (target < 256: ${memVerdict}), controller ${fmt(controllerPeak, 0)} MiB.
`;
  return { text, verdicts };
}

export async function runBundleBench(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), "ferry-bench-"));
  try {
    const keys = join(work, "keys");
    const key = JSON.parse(await mustExec([process.execPath, FERRY_BIN, "keys", "generate", "--name", "bench-1", "--out", keys, "--json"])) as {
      secretFile: string;
      publicKey: string;
    };
    const only = process.env["BENCH_CLOSURES"]?.split(",") ?? ["incompressible", "realistic"];
    const results: ClosureResult[] = [];
    if (only.includes("incompressible")) {
      process.stderr.write(`building the incompressible closure: ${COUNT} paths, ${TOTAL_MIB} MiB (cached after the first run)…\n`);
      const root = await build([
        join(HERE, "closure.nix"),
        "--arg",
        "count",
        String(COUNT),
        "--arg",
        "totalMiB",
        String(TOTAL_MIB),
        "--argstr",
        "salt",
        "ferry-bench-1",
      ]);
      results.push(await benchClosure(work, "incompressible", "test/bench/closure.nix, pseudo-random data", root, key));
    }
    if (only.includes("realistic")) {
      process.stderr.write(`building the realistic closure from /usr/lib and /usr/share: ${COUNT} paths, about ${TOTAL_MIB} MiB…\n`);
      const lists = join(work, "lists");
      writeRealisticLists(lists, COUNT, TOTAL_MIB);
      const root = await build([join(HERE, "realistic.nix"), "--arg", "listsDir", lists, "--arg", "count", String(COUNT), "--argstr", "salt", "ferry-bench-1"]);
      results.push(await benchClosure(work, "realistic", "test/bench/realistic.nix, files of this machine's /usr/lib and /usr/share", root, key));
    }
    const sections = results.map(section);
    for (const s of sections) process.stdout.write(`${s.verdicts.join("; ")}\n`);
    const nixVersion = (await mustExec(["nix", "--version"])).trim();
    // The analysis is written by hand under this heading; a new run keeps it.
    const analysisHeading = "### Where the time goes";
    let analysis = "";
    try {
      const previous = readFileSync(join(HERE, "RESULTS.md"), "utf8");
      const at = previous.indexOf(analysisHeading);
      if (at >= 0) {
        const next = previous.indexOf("\n## ", at);
        analysis = previous.slice(at, next < 0 ? undefined : next + 1);
      }
    } catch {
      // first run
    }
    // The other benches' sections stay as they are.
    writeResultsSection(
      join(HERE, "RESULTS.md"),
      "## Bundles: \`ferry bundle create\` + \`ferry bundle import\` vs \`nix-store --export | nix-store --import\`",
      `Command: \`BENCH_RUNS=${RUNS} npm run bench\` (runs \`node --import tsx test/bench/run.ts\`; \`BENCH_PATHS\`, \`BENCH_MIB\`, \`BENCH_RUNS\` override ${COUNT}, ${TOTAL_MIB}, ${RUNS}; \`BENCH_CLOSURES=incompressible,realistic\` picks the closures).

- Machine: ${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${fmt(totalmem() / 2 ** 30, 1)} GiB RAM, shared with other jobs (the load average at the start of each run is in the tables); ${nixVersion}; Node ${process.version}; run ${new Date().toISOString()}.
- Baselines: \`nix-store --export $(nix-store -qR ROOT) | unshare -m sh -c 'mount --bind FRESH/nix /nix && nix-store --import'\` into an empty store, and the same followed by \`&& sync\` (durable, like a site import must be: the fair baseline).
- Ferry: \`ferry bundle create --manifest HOSTS.json -o B --signing-key-file K\` (format 2: each NAR serialised in-process from the store — the bytes of \`nix-store --dump\`, checked against Nix's NAR hash — piped through \`zstd -3 -T0\` only where it pays: NARs under 64 KiB, and NARs whose first 128 KiB have a byte entropy above 7.5 bits, go in uncompressed (\`Compression: none\`, no zstd process); hashed on the way, manifest last; no scratch copy), then \`ferry bundle import B --trusted-key K\` into a freshly started controller (one pass: streamed once to the controller, verified on both sides, staged, synced, renamed into the cache).
- Every measured step starts after a \`sync\` (not timed). Times are wall clock; memory is the peak RSS of each command's process tree (\`/usr/bin/time -v\`; create includes its \`zstd\` processes); the controller's is its VmHWM. Medians of ${RUNS}.

${sections.map((s) => s.text).join("\n")}
${analysis}`,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
