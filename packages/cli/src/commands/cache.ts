import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  FerryError,
  Nix,
  ProcessRunner,
  assertStorePath,
  parsePublicKeys,
  parseSha256,
  formatNetrc,
  readSecretKeyFile,
  trustedSigner,
  type CacheTransport,
  type SignedPathInfo,
} from "@ferry/core";
import { parseVerb } from "../args.js";
import { readEnv } from "../spec/env.js";
import { VERBS } from "../spec/index.js";
import { discoverCacheUrl, withConnection } from "../client.js";
import { createOutput } from "../output.js";
import { uploadInParallel } from "../parallel-upload.js";
import { createProgress } from "../progress.js";
import { formatCacheGc } from "../cache-gc-report.js";
import { parseCount, parseDuration } from "../units.js";

/**
 * zstd level of pushed NARs. Measured on 200 MB of binaries and libraries
 * (test/bench/RESULTS.md): level 1 compresses 2.34:1 at 267 MB/s of one core,
 * level 3 2.68:1 at 217 MB/s, level 9 2.99:1 at 43 MB/s. Every host downloads
 * what is pushed once, so 13 % fewer bytes are worth 23 % more push CPU;
 * beyond 3 the CPU cost grows much faster than the saving. It is also Nix's
 * own default for zstd, what `nix copy --to 'file://…?compression=zstd'` uses.
 */
const ZSTD_LEVEL = 3;
/** Upload processes at once: hides each upload's round trip and the cache's fsync behind the others. */
const DEFAULT_JOBS = 4;

export async function cacheCommand(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  if (verb === "push") return cachePush(rest);
  if (verb === "rm") return cacheRemove(rest);
  if (verb === "gc") return cacheGc(rest);
  throw new FerryError("E_BAD_ARGUMENT", `unknown verb 'cache ${verb ?? ""}': use push, rm or gc`);
}

/** The key a push signs with: the flag, else FERRY_SIGNING_KEY_FILE (as bundle create), else none only when asked for. */
function signingKeyFile(flag: string | undefined, unsigned: boolean): string | undefined {
  if (flag && unsigned) throw new FerryError("E_BAD_ARGUMENT", "--signing-key-file and --unsigned exclude each other");
  if (unsigned) return undefined;
  const file = flag ?? readEnv("FERRY_SIGNING_KEY_FILE");
  if (!file) {
    throw new FerryError(
      "E_PUSH_UNSIGNED",
      "refusing to push unsigned paths, which every host refuses: pass --signing-key-file KEY or set FERRY_SIGNING_KEY_FILE (or --unsigned to push them anyway)",
    );
  }
  return file;
}

function sameContents(local: SignedPathInfo, cached: SignedPathInfo): boolean {
  const a = parseSha256(local.narHash);
  const b = parseSha256(cached.narHash);
  return (
    a !== undefined &&
    b !== undefined &&
    a.equals(b) &&
    local.narSize === cached.narSize &&
    [...local.references].sort().join(" ") === [...cached.references].sort().join(" ")
  );
}

/**
 * Signs a closure and uploads it. Paths the cache already holds are not
 * uploaded again (nix copy skips them), so their narinfos get the new
 * signatures through nix store copy-sigs, which also checks that the cache's
 * copy has the same contents; a cache copy with other contents stops the
 * push before anything is uploaded.
 */
async function cachePush(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS["cache push"], args);
  const jobs = parseJobs(values.jobs);
  const roots = positionals.map(assertStorePath);
  const keyFile = signingKeyFile(values["signing-key-file"], values.unsigned);
  // Read before anything else happens, so a bad key file changes nothing.
  const key = keyFile === undefined ? undefined : readSecretKeyFile(keyFile);
  const out = createOutput(values.json);
  const nix = new Nix(new ProcessRunner());
  return withConnection(values, async (connection) => {
    const cacheUrl = values["cache-url"] ?? readEnv("FERRY_CACHE_URL") ?? (await discoverCacheUrl(connection));
    return withNetrc(cacheUrl, connection.token, async (netrcFile) => {
      // Nix checks the cache's certificate against the CA the gRPC connection trusts.
      const transport = { netrcFile, caFile: connection.transport.caFile };
      const closure = await nix.closure(roots);
      const local = new Map((await nix.pathInfos(closure)).map((info) => [info.path, { ...info, signatures: [], ultimate: false }]));
      const cached = new Map((await nix.cachedPathInfos(cacheUrl, closure, transport)).map((info) => [info.path, info]));
      const conflicts = [...cached.values()].filter((info) => !sameContents(local.get(info.path) as SignedPathInfo, info));
      if (conflicts.length > 0) {
        const first = conflicts[0] as SignedPathInfo;
        throw new FerryError(
          "E_CACHE_CONFLICT",
          `the cache already holds ${conflicts.length} path(s) of this closure with other contents; ${first.path}: the cache has NAR hash ${first.narHash} ` +
            `(${first.narSize} bytes), this machine ${local.get(first.path)?.narHash} (${local.get(first.path)?.narSize} bytes); nothing was uploaded`,
        );
      }
      if (keyFile) {
        out.note(`signing ${closure.length} paths with ${keyFile}`);
        await nix.sign(keyFile, closure);
      } else {
        out.note("pushing unsigned paths (--unsigned): hosts refuse them until they are pushed again with a signing key");
      }
      out.note(`uploading the closure of ${roots.length} path(s) (${closure.length} paths, ${cached.size} already in the cache) to ${cacheUrl}`);
      const toUpload = closure.filter((path) => !cached.has(path)).map((path) => local.get(path) as SignedPathInfo);
      // Counted in NAR bytes (what the store holds), not the compressed bytes sent: those are known only once sent.
      const progress = createProgress({
        label: "uploading",
        totalItems: toUpload.length,
        totalBytes: toUpload.reduce((sum, item) => sum + item.narSize, 0),
        itemNoun: "paths",
        json: values.json,
      });
      try {
        await upload(compressedUrl(cacheUrl), toUpload, jobs, transport, (done) =>
          progress.add(
            done.reduce((sum, item) => sum + item.narSize, 0),
            done.length,
          ),
        );
      } finally {
        progress.finish();
      }
      let signaturesAdded = 0;
      if (key) {
        const ours = parsePublicKeys([key.publicKey]);
        const lacking = [...cached.values()].filter((info) => trustedSigner(info, ours) === undefined).map((info) => info.path);
        if (lacking.length > 0) {
          out.note(`adding signatures by ${key.name} to ${lacking.length} path(s) already in the cache`);
          await nix.copySignatures(lacking, { from: "auto", to: cacheUrl, ...transport });
          const after = await nix.cachedPathInfos(cacheUrl, lacking, transport);
          const still = lacking.filter((path) => !after.some((info) => info.path === path && trustedSigner(info, ours) !== undefined));
          if (still.length > 0)
            throw new FerryError("E_CACHE_UPLOAD", `the cache did not keep the signature by ${key.name} of ${still.length} path(s), e.g. ${still[0]}`);
          signaturesAdded = lacking.length;
        }
      }
      const summary = { cacheUrl, roots, paths: closure.length, uploaded: closure.length - cached.size, signaturesAdded, signed: key !== undefined };
      out.result(
        summary,
        () =>
          `pushed ${closure.length} paths to ${cacheUrl} (${summary.uploaded} new${signaturesAdded > 0 ? `, signatures added to ${signaturesAdded}` : ""}` +
          `${key ? `, signed by ${key.name}` : ", unsigned"})\n`,
      );
      return 0;
    });
  });
}

function parseJobs(flag: string | undefined): number {
  if (flag === undefined) return DEFAULT_JOBS;
  const jobs = Number(flag);
  if (!/^\d+$/.test(flag) || jobs < 1 || jobs > 64)
    throw new FerryError("E_BAD_ARGUMENT", `--jobs expects a whole number from 1 to 64, got ${JSON.stringify(flag)}`);
  return jobs;
}

/** Binary caches (HTTP, file) compress NARs as the store URL says; Nix's default would be xz, ten times slower. */
function compressedUrl(cacheUrl: string): string {
  if (!/^(https?|file):\/\//.test(cacheUrl) || /[?&]compression=/.test(cacheUrl)) return cacheUrl;
  return `${cacheUrl}${cacheUrl.includes("?") ? "&" : "?"}compression=zstd&compression-level=${ZSTD_LEVEL}`;
}

/**
 * One `nix copy` per batch of paths whose references are already uploaded,
 * `jobs` at a time. Each process gets its own Nix cache directory: processes
 * sharing one replace each other's row for the cache in its SQLite database
 * and then fail on a constraint. `uploaded` hears of each batch once it is in.
 */
async function upload(
  url: string,
  items: SignedPathInfo[],
  jobs: number,
  transport: CacheTransport,
  uploaded: (items: SignedPathInfo[]) => void,
): Promise<void> {
  if (items.length === 0) return;
  const runner = new ProcessRunner();
  if (jobs === 1 || items.length === 1) {
    await new Nix(runner).copyTo(
      url,
      items.map((item) => item.path),
      transport,
      { noRecursive: true },
    );
    uploaded(items);
    return;
  }
  const homes = mkdtempSync(join(tmpdir(), "ferry-push-"));
  const byPath = new Map(items.map((item) => [item.path, item]));
  let batches = 0;
  try {
    await uploadInParallel(items, jobs, async (paths) => {
      await new Nix(runner).copyTo(url, paths, transport, { noRecursive: true, env: { XDG_CACHE_HOME: join(homes, String(batches++)) } });
      uploaded(paths.map((path) => byPath.get(path) as SignedPathInfo));
    });
  } finally {
    rmSync(homes, { recursive: true, force: true });
  }
}

async function cacheRemove(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS["cache rm"], args);
  const storePaths = positionals.map(assertStorePath);
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    const response = await connection.call(connection.client.removeCachePaths, { storePaths });
    out.result(response, () =>
      [
        response.removed.length > 0 ? `removed ${response.removed.length} path(s) from the cache` : "removed nothing",
        ...response.absent.map((path) => `not in the cache: ${path}`),
      ].join("\n"),
    );
    return 0;
  });
}

async function cacheGc(args: string[]): Promise<number> {
  const { values } = parseVerb(VERBS["cache gc"], args);
  // Parsed before connecting: a bad value changes nothing.
  const minAge = values["min-age"] === undefined ? undefined : parseDuration(values["min-age"], "--min-age");
  const keepBundles = values["keep-bundles"] === undefined ? undefined : parseCount(values["keep-bundles"], "--keep-bundles");
  const out = createOutput(values.json);
  return withConnection(values, async (connection) => {
    const response = await connection.call(connection.client.collectCacheGarbage, {
      dryRun: values["dry-run"],
      ...(minAge === undefined ? {} : { minAgeSeconds: Math.ceil(minAge / 1000) }),
      ...(keepBundles === undefined ? {} : { keepBundles }),
    });
    out.result(response, () => formatCacheGc(response));
    return 0;
  });
}

/** Nix authenticates to the cache from a netrc file; it lives only for this push. */
async function withNetrc<T>(cacheUrl: string, token: string, work: (netrcFile: string | undefined) => Promise<T>): Promise<T> {
  if (!/^https?:\/\//.test(cacheUrl)) return work(undefined);
  const dir = mkdtempSync(join(tmpdir(), "ferry-netrc-"));
  try {
    const netrc = join(dir, "netrc");
    writeFileSync(netrc, formatNetrc([{ machine: new URL(cacheUrl).hostname, login: "ferry", password: token }]), { mode: 0o600 });
    return await work(netrc);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
