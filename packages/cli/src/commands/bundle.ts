import { createReadStream, statSync } from "node:fs";
import { resolve } from "node:path";
import {
  FerryError,
  Nix,
  ProcessRunner,
  TarReader,
  canonicalHostMap,
  assertHostName,
  assertStorePath,
  createBundle,
  createBundleFromFileCache,
  createBundleFromExport,
  openCacheTarBundle,
  signFileCache,
  modeToWire,
  parseInventory,
  parseManifest,
  parseOptionalMode,
  assertReadable,
  readBundleManifest,
  readSecretKeyFile,
  readTextFile,
  verifyBundle,
  type BundleManifest,
} from "@ferry/core";
import { parseVerb, requireString } from "../args.js";
import { parseDuration } from "../units.js";
import { connect, discoverCacheUrl } from "../client.js";
import { createOutput, hostStatusJson, shortPath, table } from "../output.js";
import { readEnv } from "../spec/env.js";
import { counted, createProgress, type Progress } from "../progress.js";
import { VERBS } from "../spec/index.js";
import { bundleUploadUrl, streamBundle, supportsSinglePass } from "./bundle-stream.js";
import { parseRolloutPolicy, policyFlagsGiven } from "../rollout-policy-flags.js";
import { publishBundle, siteClient, uploadBundleFiles } from "./site-client.js";
import { INTENT_EXPIRY, intentExpiryMs, intentKey, parseIntentMode, readIntentsFile, signTargets } from "../intents.js";

const MIB = 1024 * 1024;

export async function bundleCommand(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  switch (verb) {
    case "create":
      return create(rest);
    case "verify":
      return verify(rest);
    case "inspect":
      return inspect(rest);
    case "import":
      return importBundle(rest);
    case "sign-cache":
      return signCache(rest);
    default:
      throw new FerryError("E_BAD_ARGUMENT", `unknown verb 'bundle ${verb ?? ""}': use create, verify, inspect, import or sign-cache`);
  }
}

/** `{"hosts": {"web-1": "/nix/store/…"}}` */
function readHostsFile(file: string): Record<string, string> {
  const text = readTextFile(file, "manifest");
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new FerryError("E_BAD_ARGUMENT", `manifest ${file} is not valid JSON: ${(error as Error).message}`);
  }
  const hosts = (raw as { hosts?: unknown } | null)?.hosts;
  if (typeof hosts !== "object" || hosts === null || Array.isArray(hosts) || Object.keys(hosts).length === 0) {
    throw new FerryError("E_BAD_ARGUMENT", `${file} must hold {"hosts": {"HOST": "/nix/store/…", …}}`);
  }
  return Object.fromEntries(canonicalHostMap(Object.entries(hosts).map(([name, path]) => [name, assertStorePath(path)])));
}

function trustedKeys(values: string[] | undefined): string[] {
  const keys = values ?? [];
  const fromEnv = readEnv("FERRY_TRUSTED_KEYS")?.split(/\s+/).filter(Boolean) ?? [];
  const all = [...keys, ...fromEnv];
  if (all.length === 0) throw new FerryError("E_BAD_ARGUMENT", "name the keys to trust: --trusted-key NAME:BASE64 (repeatable) or FERRY_TRUSTED_KEYS");
  return all;
}

function summary(manifest: BundleManifest): Record<string, unknown> {
  return {
    formatVersion: `${manifest.version}.${manifest.minorVersion}`,
    sequence: manifest.sequence,
    createdAt: manifest.createdAt,
    hosts: manifest.hosts,
    paths: manifest.paths.length,
    narBytes: manifest.paths.reduce((sum, path) => sum + path.nar.size, 0),
    narSize: manifest.paths.reduce((sum, path) => sum + path.narSize, 0),
    omitted: manifest.omitted.length,
    since: manifest.since,
    site: manifest.site,
    expiresAt: manifest.expiresAt,
    intents: manifest.intents.map((signed) => signed.intent),
  };
}

async function create(args: string[]): Promise<number> {
  const { values } = parseVerb(VERBS["bundle create"], args);
  const hosts = readHostsFile(requireString(values.manifest, "--manifest"));
  const output = resolve(requireString(values.output, "-o/--output"));
  const keyFile = values["signing-key-file"] ?? readEnv("FERRY_SIGNING_KEY_FILE");
  if (!keyFile) throw new FerryError("E_BAD_ARGUMENT", "a bundle must be signed: pass --signing-key-file KEY (or set FERRY_SIGNING_KEY_FILE)");
  const signingKey = readSecretKeyFile(keyFile);
  const since = values.since === undefined ? undefined : parseInventory(readTextFile(values.since, "site inventory"));
  const sequence = values.sequence === undefined ? undefined : Number(values.sequence);
  if (sequence !== undefined && !(Number.isSafeInteger(sequence) && sequence > 0))
    throw new FerryError("E_BAD_ARGUMENT", "--sequence expects a positive integer");
  const site = values.site === undefined ? null : assertHostName(values.site);
  const expiresIn = values["expires-in"];
  const expiresAt = expiresIn === "never" ? null : new Date(Date.now() + parseDuration(expiresIn, "--expires-in"));
  if (values.format !== undefined && values.format !== "1" && values.format !== "2")
    throw new FerryError("E_BAD_ARGUMENT", "--format expects 2 (streamed, the default) or 1 (for sites running an older Ferry)");
  const format = values.format === "1" ? 1 : 2;
  const out = createOutput(values.json);
  out.note(`bundling the closures of ${Object.keys(hosts).length} host(s)${since ? ` less the ${since.storePaths.length} paths of the inventory` : ""}`);
  const runner = new ProcessRunner();
  const fromCache = values["from-file-cache"];
  if (fromCache !== undefined && values.format === "2")
    throw new FerryError("E_BAD_ARGUMENT", "--from-file-cache makes a format 1 bundle (every hash is known from the narinfos); drop --format 2");
  const fromExport = values["from-export"];
  if (fromExport !== undefined && fromCache !== undefined)
    throw new FerryError("E_BAD_ARGUMENT", "--from-export and --from-file-cache exclude each other: wrap one source");
  if (fromExport !== undefined && (values.format === "1" || values["work-dir"] !== undefined))
    throw new FerryError("E_BAD_ARGUMENT", "--from-export makes a format 2 bundle in one pass; drop --format 1 and --work-dir");
  if (fromExport !== undefined && fromExport !== "-") assertReadable(fromExport, "export");
  // Intents for the bundle's hosts, checked by each host (apply-bundle) or relayed by the site controller (import --deploy).
  const intentSigner = intentKey(values);
  const intents = intentSigner
    ? signTargets(
        Object.entries(hosts).map(([hostName, storePath]) => ({ hostName, storePath })),
        parseIntentMode(values["intent-mode"]),
        intentSigner,
        intentExpiryMs(values, expiresIn === "never" ? INTENT_EXPIRY.bundle : expiresIn),
      )
    : values.intents === undefined
      ? []
      : readIntentsFile(values.intents);
  // The writers tell the total with their first report: only then is the closure known.
  const { manifest, bytes } = await withProgress(values.json, "bundling", undefined, (progress) => {
    const common = {
      hosts,
      output,
      signingKey,
      ...(since ? { since } : {}),
      ...(sequence === undefined ? {} : { sequence }),
      site,
      expiresAt,
      intents,
      onProgress: (done: { bytes: number; totalBytes: number }) => progress.update(done),
    };
    return fromCache
      ? createBundleFromFileCache({ ...common, cacheDir: resolve(fromCache) })
      : fromExport !== undefined
        ? createBundleFromExport({ ...common, runner, exportSource: fromExport === "-" ? (process.stdin as AsyncIterable<Buffer>) : resolve(fromExport) })
        : createBundle({
            ...common,
            nix: new Nix(runner),
            runner,
            format,
            ...(values["work-dir"] ? { workDir: values["work-dir"] } : {}),
          });
  });
  out.result(
    { file: output, bytes, signer: signingKey.name, publicKey: signingKey.publicKey, ...summary(manifest) },
    () =>
      `wrote ${output}: ${manifest.paths.length} paths (${(bytes / MIB).toFixed(1)} MiB)` +
      `${manifest.omitted.length ? `, ${manifest.omitted.length} left out as present at the site` : ""}, sequence ${manifest.sequence}, signed by ${signingKey.name}\n`,
  );
  return 0;
}

/** Runs `work` with a progress line over `totalBytes`, cleared however the work ends. */
async function withProgress<T>(json: boolean, label: string, totalBytes: number | undefined, work: (progress: Progress) => Promise<T>): Promise<T> {
  const progress = createProgress({ label, json, ...(totalBytes === undefined ? {} : { totalBytes }) });
  try {
    return await work(progress);
  } finally {
    progress.finish();
  }
}

/** With --manifest-file, the bundle a file cache tarball and its signed manifest make together (checked like any bundle). */
async function cacheTarBody(file: string, manifestFile: string | undefined): Promise<{ size: number; chunks: () => AsyncIterable<Buffer> } | undefined> {
  if (manifestFile === undefined) return undefined;
  assertReadable(manifestFile, "cache manifest");
  const assembled = await openCacheTarBundle(file, manifestFile);
  return { size: assembled.size, chunks: () => assembled.chunks() };
}

async function signCache(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS["bundle sign-cache"], args);
  const cacheDir = resolve(positionals[0] as string);
  const hosts = readHostsFile(requireString(values.manifest, "--manifest"));
  const output = resolve(requireString(values.output, "-o/--output"));
  const keyFile = values["signing-key-file"] ?? readEnv("FERRY_SIGNING_KEY_FILE");
  if (!keyFile) throw new FerryError("E_BAD_ARGUMENT", "a cache manifest must be signed: pass --signing-key-file KEY (or set FERRY_SIGNING_KEY_FILE)");
  const signingKey = readSecretKeyFile(keyFile);
  const since = values.since === undefined ? undefined : parseInventory(readTextFile(values.since, "site inventory"));
  const sequence = values.sequence === undefined ? undefined : Number(values.sequence);
  if (sequence !== undefined && !(Number.isSafeInteger(sequence) && sequence > 0))
    throw new FerryError("E_BAD_ARGUMENT", "--sequence expects a positive integer");
  const expiresIn = values["expires-in"];
  const expiresAt = expiresIn === "never" ? null : new Date(Date.now() + parseDuration(expiresIn, "--expires-in"));
  const { manifest, bytes } = await signFileCache({
    cacheDir,
    hosts,
    output,
    signingKey,
    ...(since ? { since } : {}),
    ...(sequence === undefined ? {} : { sequence }),
    site: values.site === undefined ? null : assertHostName(values.site),
    expiresAt,
  });
  createOutput(values.json).result(
    { file: output, bytes, signer: signingKey.name, publicKey: signingKey.publicKey, ...summary(manifest) },
    () =>
      `wrote ${output}: the signed manifest of ${manifest.paths.length} paths in ${cacheDir}, sequence ${manifest.sequence}, signed by ${signingKey.name}\n` +
      `ship it with the cache as a tarball (tar -C ${cacheDir} -cf cache.tar .); the site runs: ferry bundle import cache.tar --manifest-file ${output}\n`,
  );
  return 0;
}

async function verify(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS["bundle verify"], args);
  const file = positionals[0] as string;
  assertReadable(file, "bundle");
  const keys = trustedKeys(values["trusted-key"]);
  const body = await cacheTarBody(file, values["manifest-file"]);
  const verified = await verifyBundle(body?.chunks() ?? createReadStream(file, { highWaterMark: MIB }), { trustedKeys: keys });
  createOutput(values.json).result(
    { file, valid: true, signer: verified.signer, manifestSha256: verified.manifestSha256, bytes: verified.bytes, ...summary(verified.manifest) },
    () => `${file}: valid, signed by ${verified.signer}; ${verified.manifest.paths.length} paths, sequence ${verified.manifest.sequence}\n`,
  );
  return 0;
}

async function inspect(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS["bundle inspect"], args);
  const file = positionals[0] as string;
  assertReadable(file, "bundle");
  const head = await readBundleManifest(new TarReader(createReadStream(file, { highWaterMark: MIB })));
  const manifest = parseManifest(head.manifestBytes);
  const signers = head.signatureFile
    .split("\n")
    .filter(Boolean)
    .map((line) => line.slice(0, line.indexOf(":")));
  createOutput(values.json).result({ file, bytes: statSync(file).size, signers, verified: false, ...summary(manifest), closure: manifest.paths }, () => {
    const lines = [
      `${file}: Ferry bundle format ${manifest.version}.${manifest.minorVersion}, sequence ${manifest.sequence}, created ${manifest.createdAt}`,
      `signed by: ${signers.join(", ") || "nobody"} (not verified; use ferry bundle verify)`,
      `for site: ${manifest.site ?? "any (names none)"}; expires: ${manifest.expiresAt ?? "never"}`,
      "",
      table(
        ["HOST", "SYSTEM"],
        Object.entries(manifest.hosts).map(([host, path]) => [host, path]),
      ).trimEnd(),
      "",
      table(
        ["PATH", "NAR SIZE", "FILE SIZE"],
        manifest.paths.map((path) => [shortPath(path.storePath), String(path.narSize), String(path.nar.size)]),
      ).trimEnd(),
    ];
    if (manifest.omitted.length > 0)
      lines.push("", `${manifest.omitted.length} path(s) left out: the site has them (delta since sequence ${manifest.since?.lastSequence ?? "?"})`);
    return `${lines.join("\n")}\n`;
  });
  return 0;
}

async function importBundle(args: string[]): Promise<number> {
  const { values, positionals } = parseVerb(VERBS["bundle import"], args);
  const file = positionals[0] as string;
  assertReadable(file, "bundle");
  const mode = parseOptionalMode(values.mode);
  if (values["manifest-file"] !== undefined && values["two-pass"])
    throw new FerryError("E_BAD_ARGUMENT", "a file cache tarball is imported in one pass; drop --two-pass");
  const body = await cacheTarBody(file, values["manifest-file"]);
  const localVerify = !values["no-local-verify"];
  if (!localVerify && values["two-pass"]) throw new FerryError("E_BAD_ARGUMENT", "--two-pass verifies locally before uploading; drop --no-local-verify");
  if (values.rollout && values.deploy) throw new FerryError("E_BAD_ARGUMENT", "--deploy and --rollout exclude each other: a rollout deploys in waves");
  const stray = values.rollout ? [] : policyFlagsGiven(values);
  if (stray.length > 0)
    throw new FerryError(
      "E_BAD_ARGUMENT",
      `${stray.map((flag) => `--${flag}`).join(", ")} ${stray.length === 1 ? "goes" : "go"} only with --rollout (a rollout policy)`,
    );
  const rollout = values.rollout ? parseRolloutPolicy(values) : undefined;
  if (rollout && values["two-pass"]) throw new FerryError("E_BAD_ARGUMENT", "--rollout needs the single-pass import; drop --two-pass");
  const keys = localVerify ? trustedKeys(values["trusted-key"]) : undefined;
  const out = createOutput(values.json);
  const connection = connect(values);
  const client = siteClient(connection);
  try {
    const cacheUrl = values["cache-url"] ?? readEnv("FERRY_CACHE_URL") ?? (await discoverCacheUrl(connection));
    const uploadUrl = bundleUploadUrl(cacheUrl);
    if (!values["two-pass"] && (await supportsSinglePass(uploadUrl, connection.token, connection.transport.tls))) {
      // One pass: the controller verifies everything with its own keys while staging the files, and publishes only a sound bundle.
      out.note(`sending ${file} to ${uploadUrl.origin}${localVerify ? ", verifying it here as it goes" : ""}`);
      const streamed = await withProgress(values.json, "sending", body?.size ?? statSync(file).size, (progress) =>
        streamBundle({
          file,
          ...(body ? { body } : {}),
          url: uploadUrl,
          token: connection.token,
          tls: connection.transport.tls,
          deploy: values.deploy,
          mode,
          ...(rollout ? { rollout } : {}),
          ...(keys ? { trustedKeys: keys } : {}),
          onBytes: (bytes) => progress.add(bytes),
        }),
      );
      const response = streamed.response;
      const started = streamed.rollout;
      out.result(
        {
          file,
          sequence: response.sequence,
          signer: response.signer,
          paths: response.paths,
          uploadedFiles: 2 * response.paths,
          uploadedBytes: streamed.bytes,
          locallyVerified: streamed.verified !== undefined,
          deployed: values.deploy,
          deploymentId: response.deploymentId || null,
          rolloutId: started?.id ?? null,
          hosts: response.hosts.map(hostStatusJson),
        },
        () =>
          `imported bundle ${response.sequence}: ${response.paths} paths (${(streamed.bytes / MIB).toFixed(1)} MiB)` +
          (values.deploy
            ? `; deployment ${response.deploymentId} for ${response.hosts.map((host) => host.name).join(", ")}`
            : started
              ? `; rollout ${started.id}: ${started.hosts.length} host(s) in ${started.waveCount} wave(s) (watch it with: ferry rollout status ${started.id} --wait)`
              : "; not deployed (pass --deploy or --rollout)") +
          "\n",
      );
      return 0;
    }
    if (!keys) throw new FerryError("E_BAD_ARGUMENT", "this controller has no single-pass import; verify locally: drop --no-local-verify");
    if (body)
      throw new FerryError(
        "E_BAD_ARGUMENT",
        "this controller has no single-pass import, which a file cache tarball needs; upgrade it, or make a bundle (ferry bundle create --from-file-cache)",
      );
    // Two passes (controllers without PUT /bundles/upload): 1. the whole bundle, checked locally, before anything leaves this machine.
    out.note(`verifying ${file}`);
    const size = statSync(file).size;
    const verified = await withProgress(values.json, "verifying", size, (progress) =>
      verifyBundle(
        counted(createReadStream(file, { highWaterMark: MIB }), (bytes) => progress.add(bytes)),
        { trustedKeys: keys },
      ),
    );
    const { manifest } = verified;
    const options = { deploy: values.deploy, mode: modeToWire(mode), checkOnly: true };
    // 2. The controller checks signature (its own keys), sequence and hosts, still recording nothing.
    await publishBundle(connection, client, verified.manifestBytes, verified.signatureFile, options);
    // 3. Only now do files reach the cache.
    out.note(`uploading ${manifest.paths.length} paths to ${cacheUrl}`);
    const uploaded = await withProgress(values.json, "uploading", size, (progress) =>
      uploadBundleFiles(file, manifest, cacheUrl, connection.token, connection.transport.tls, (bytes) => progress.add(bytes)),
    );
    // 4. Publish: the controller checks the cache against the manifest, records the sequence and, with --deploy, the desired systems.
    const response = await publishBundle(connection, client, verified.manifestBytes, verified.signatureFile, { ...options, checkOnly: false });
    out.result(
      {
        file,
        sequence: manifest.sequence,
        signer: response.signer,
        paths: manifest.paths.length,
        uploadedFiles: uploaded.files,
        uploadedBytes: uploaded.bytes,
        locallyVerified: true,
        deployed: values.deploy,
        deploymentId: response.deploymentId || null,
        hosts: response.hosts.map(hostStatusJson),
      },
      () =>
        `imported bundle ${manifest.sequence}: ${manifest.paths.length} paths (${(uploaded.bytes / MIB).toFixed(1)} MiB)` +
        (values.deploy ? `; deployment ${response.deploymentId} for ${response.hosts.map((host) => host.name).join(", ")}` : "; not deployed (pass --deploy)") +
        "\n",
    );
    return 0;
  } finally {
    client.close();
    connection.close();
  }
}
