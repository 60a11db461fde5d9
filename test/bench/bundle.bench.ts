// Benchmark (not a timing test): `ferry bundle create` + `ferry bundle import`
// into a fresh controller, against `nix-store --export | nix-store --import`
// into a fresh store, on the same generated closure in the same run. Wall
// time is measured here; peak memory (max RSS of the command's whole process
// tree) by /usr/bin/time -v. Writes test/bench/RESULTS.md.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, totalmem, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { exec, mustExec, waitFor } from "../harness/exec.js";
import { FERRY_BIN } from "../harness/paths.js";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const COUNT = Number(process.env["BENCH_PATHS"] ?? 300);
const TOTAL_MIB = Number(process.env["BENCH_MIB"] ?? 512);
const RUNS = Number(process.env["BENCH_RUNS"] ?? 3);
const TIME = "/usr/bin/time";

interface Measured {
  seconds: number;
  maxRssMiB: number;
}

/** Runs argv under /usr/bin/time -v; wall time from here, max RSS from time. */
async function measure(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<Measured> {
  const started = performance.now();
  const result = await exec([TIME, "-v", ...argv], { env, timeoutMs: 600_000 });
  const seconds = (performance.now() - started) / 1000;
  if (result.code !== 0) throw new Error(`${argv.join(" ")} exited ${result.code}:\n${result.stderr.slice(-3000)}`);
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(result.stderr);
  return { seconds, maxRssMiB: rss ? Number(rss[1]) / 1024 : NaN };
}

/** A fresh controller of our own, so its pid (and peak memory) is known. */
async function startController(dir: string): Promise<{ pid: number; grpc: string; stop: () => void; hwmMiB: () => number }> {
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
    pid: child.pid as number,
    grpc: `127.0.0.1:${started.grpcPort}`,
    stop: () => child.kill("SIGKILL"),
    hwmMiB: () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"))?.[1] ?? NaN) / 1024,
  };
}

function fmt(n: number, digits = 2): string {
  return n.toFixed(digits);
}

export async function runBundleBench(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), "ferry-bench-"));
  try {
    process.stderr.write(`building a closure of ${COUNT} paths, ${TOTAL_MIB} MiB (cached after the first run)…\n`);
    const root = (
      await mustExec(
        [
          "nix-build",
          join(HERE, "closure.nix"),
          "--no-out-link",
          "--arg",
          "count",
          String(COUNT),
          "--arg",
          "totalMiB",
          String(TOTAL_MIB),
          "--argstr",
          "salt",
          "ferry-bench-1",
          "--option",
          "substituters",
          "",
        ],
        { timeoutMs: 600_000 },
      )
    ).trim();
    const closure = (await mustExec(["nix-store", "--query", "--requisites", root])).split("\n").filter(Boolean);
    const info = JSON.parse(await mustExec(["nix", "--extra-experimental-features", "nix-command", "path-info", "--json", "--recursive", root])) as {
      narSize: number;
    }[];
    const narBytes = info.reduce((sum, entry) => sum + entry.narSize, 0);
    const keys = join(work, "keys");
    const key = JSON.parse(await mustExec([process.execPath, FERRY_BIN, "keys", "generate", "--name", "bench-1", "--out", keys, "--json"])) as {
      secretFile: string;
      publicKey: string;
    };
    writeFileSync(join(work, "hosts.json"), JSON.stringify({ hosts: { "bench-host": root } }));

    const rows: { run: number; baseline: Measured; create: Measured; import: Measured; controllerMiB: number; bundleBytes: number }[] = [];
    for (let run = 1; run <= RUNS; run++) {
      // Baseline: export the closure, import it into an empty private store.
      const store = join(work, `store-${run}`);
      mkdirSync(join(store, "nix"), { recursive: true });
      const baselineScript = `nix-store --export $(nix-store -qR ${root}) | unshare -m sh -c 'mount --bind ${store}/nix /nix && nix-store --import >/dev/null'`;
      const baseline = await measure(["sh", "-c", baselineScript]);
      rmSync(store, { recursive: true, force: true });

      // Ferry: bundle create, then import into a fresh controller.
      const site = join(work, `site-${run}`);
      mkdirSync(site, { recursive: true });
      const controller = await startController(site);
      writeFileSync(join(site, "data", "bundle-trusted-keys"), `${key.publicKey}\n`);
      const bundle = join(work, `bench-${run}.ferry`);
      const create = await measure([
        process.execPath,
        FERRY_BIN,
        "bundle",
        "create",
        "--manifest",
        join(work, "hosts.json"),
        "-o",
        bundle,
        "--signing-key-file",
        key.secretFile,
      ]);
      const bundleBytes = statSync(bundle).size;
      const imported = await measure([process.execPath, FERRY_BIN, "bundle", "import", bundle, "--trusted-key", key.publicKey], {
        ...process.env,
        FERRY_CONTROLLER: controller.grpc,
        FERRY_TOKEN_FILE: join(site, "data", "admin.token"),
      });
      const controllerMiB = controller.hwmMiB();
      controller.stop();
      rmSync(site, { recursive: true, force: true });
      rmSync(bundle, { force: true });
      rows.push({ run, baseline, create, import: imported, controllerMiB, bundleBytes });
      const ours = create.seconds + imported.seconds;
      process.stderr.write(
        `run ${run}: export|import ${fmt(baseline.seconds)} s; bundle create ${fmt(create.seconds)} s + import ${fmt(imported.seconds)} s = ${fmt(ours)} s; ratio ${fmt(ours / baseline.seconds)}\n`,
      );
    }

    const best = (pick: (row: (typeof rows)[0]) => number): number => Math.min(...rows.map(pick));
    const median = (pick: (row: (typeof rows)[0]) => number): number => {
      const sorted = rows.map(pick).sort((a, b) => a - b);
      return sorted[Math.floor(sorted.length / 2)] as number;
    };
    const baseMed = median((r) => r.baseline.seconds);
    const oursMed = median((r) => r.create.seconds + r.import.seconds);
    const ratio = oursMed / baseMed;
    const peak = Math.max(...rows.flatMap((r) => [r.create.maxRssMiB, r.import.maxRssMiB]));
    const controllerPeak = Math.max(...rows.map((r) => r.controllerMiB));
    const baselinePeak = Math.max(...rows.map((r) => r.baseline.maxRssMiB));
    const nixVersion = (await mustExec(["nix", "--version"])).trim();
    const verdictTime = ratio <= 1.2 ? "met" : "missed";
    const verdictMem = peak < 256 ? "met" : "missed";
    process.stdout.write(
      `closure: ${closure.length} paths, ${fmt(narBytes / 2 ** 20, 1)} MiB of NARs; bundle ${fmt((rows[0]?.bundleBytes ?? 0) / 2 ** 20, 1)} MiB\n` +
        `median of ${RUNS}: export|import ${fmt(baseMed)} s; bundle create + import ${fmt(oursMed)} s; ratio ${fmt(ratio)} (target ≤ 1.20: ${verdictTime})\n` +
        `peak RSS: bundle create/import ${fmt(peak, 0)} MiB (target < 256: ${verdictMem}); controller ${fmt(controllerPeak, 0)} MiB; export|import ${fmt(baselinePeak, 0)} MiB\n`,
    );
    const table = rows
      .map(
        (r) =>
          `| ${r.run} | ${fmt(r.baseline.seconds)} | ${fmt(r.create.seconds)} | ${fmt(r.import.seconds)} | ${fmt(r.create.seconds + r.import.seconds)} | ${fmt(
            (r.create.seconds + r.import.seconds) / r.baseline.seconds,
          )} | ${fmt(r.baseline.maxRssMiB, 0)} | ${fmt(r.create.maxRssMiB, 0)} | ${fmt(r.import.maxRssMiB, 0)} | ${fmt(r.controllerMiB, 0)} |`,
      )
      .join("\n");
    writeFileSync(
      join(HERE, "RESULTS.md"),
      `# Benchmark results

## Bundles: \`ferry bundle create\` + \`ferry bundle import\` vs \`nix-store --export | nix-store --import\`

Command: \`BENCH_RUNS=${RUNS} npm run bench\` (runs \`node --import tsx test/bench/run.ts\`; \`BENCH_PATHS\`, \`BENCH_MIB\`, \`BENCH_RUNS\` override ${COUNT}, ${TOTAL_MIB}, ${RUNS}).

- Machine: ${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${fmt(totalmem() / 2 ** 30, 1)} GiB RAM; ${nixVersion}; Node ${process.version}; run ${new Date().toISOString()}.
- Closure: ${closure.length} store paths (test/bench/closure.nix: pseudo-random, incompressible data), ${fmt(narBytes / 2 ** 20, 1)} MiB of NARs; bundle file ${fmt((rows[0]?.bundleBytes ?? 0) / 2 ** 20, 1)} MiB.
- Baseline: \`nix-store --export $(nix-store -qR ROOT) | unshare -m sh -c 'mount --bind FRESH/nix /nix && nix-store --import'\` into an empty store.
- Ferry: \`ferry bundle create --manifest HOSTS.json -o B --signing-key-file K\`, then \`ferry bundle import B --trusted-key K\` into a freshly started controller (one pass: the file is streamed once to the controller, verified on both sides as it goes, staged, synced, renamed into the cache and published).
- Times are wall clock; memory is the peak RSS of each command's process tree (\`/usr/bin/time -v\`; for create this includes \`nix copy\`); the controller's is its VmHWM.

| run | export\\|import s | create s | import s | create+import s | ratio | export\\|import MiB | create MiB | import MiB | controller MiB |
|---|---|---|---|---|---|---|---|---|---|
${table}

Median: ratio **${fmt(ratio)}** (target ≤ 1.20: ${verdictTime}); peak memory of create/import **${fmt(peak, 0)} MiB** (target < 256 MiB: ${verdictMem}); best times: export|import ${fmt(best((r) => r.baseline.seconds))} s, create+import ${fmt(best((r) => r.create.seconds + r.import.seconds))} s.

### Why the time target (≤ 1.2×) is missed

Measured on this machine (2 vCPU, 23.5 GiB, one virtio disk that takes about 257 MB/s durably: \`dd bs=1M count=512 conv=fdatasync\` needs 2.1 s):

- What changed: \`import\` is one pass. The CLI streams the file once to the controller (\`PUT /bundles/upload\`), verifying the same bytes as they go; the controller verifies while writing into a staging directory in its cache directory, fsyncs each staged file in the background as it completes, and renames NARs, then narinfos, into the cache only after everything verified. \`create\` copies the \`nix copy\` output into the archive through two 4 MiB buffers with \`writev\` instead of a write stream.
- Import measured alone, after \`sync\` (same 512 MiB bundle, fresh controller): before 4.0 s (two passes, still reachable with \`--two-pass\`); now 2.6 s, 2.2 s with \`--no-local-verify\`. In that state the controller's fsyncs cost nothing measurable (2.6 s with them, 2.6 s with them patched out), because they overlap the transfer. Packing alone (\`writeBundle\` over a warm \`nix copy\` output) went from 0.87 s to 0.44 s.
- In the benchmark these gains mostly disappear: each run writes about 2 GiB (baseline store 0.5, \`nix copy\` scratch 0.5, bundle 0.5, site cache 0.5) to a disk that absorbs about 0.25 GiB/s, so create and import run under dirty-page writeback. Right after a \`create\`, \`import\` takes 4.3–5.1 s, and still 3.8–4.4 s with the controller's fsyncs patched out (a diagnostic, not shipped). \`nix copy --to file://…?compression=zstd\` alone varies from 1.7 to 2.5 s; \`compression-level=1\` (Nix 2.8 accepts it) makes no difference on incompressible data.
- The baseline writes 0.5 GiB into the store without fsync and with no scratch copy. Ferry writes the data three times (scratch, bundle, cache) and must make the site's copy durable before it records an import; on this disk that alone is 2 s. Reaching ≤ 1.2× would need the creating side to stop writing a scratch file cache (write the archive straight from the store; sizes and hashes of compressed NARs are not known before compressing, so this needs either uncompressed NARs, whose SHA-256 and size \`nix path-info\` already gives, or a manifest written last into reserved space) — not done here.
`,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
