import { parseSignedPathInfos, type SignedPathInfo } from "./closure-signatures.js";
import { FerryError, toFerryError, type ErrorCode } from "./errors.js";
import { describeExit, outputTail, type CommandResult, type CommandRunner } from "./runner.js";
import { assertStorePath } from "./validate.js";

const EXPERIMENTAL = ["--extra-experimental-features", "nix-command"];
/** A closure listing is parsed whole: a NixOS system's `path-info --json --sigs -r` runs to megabytes. */
const LISTING_LIMIT = 256 * 1024 * 1024;
/** Nix remembers what a cache holds for days; a cache that just changed must be asked afresh. */
const FRESH_NARINFO = ["--option", "narinfo-cache-positive-ttl", "0", "--option", "narinfo-cache-negative-ttl", "0"];

/** How Nix reaches an HTTPS cache: whose CA it trusts, which credentials it sends. */
export interface CacheTransport {
  /**
   * CA bundle Nix verifies the cache's certificate with, instead of the
   * system's. Passed as NIX_SSL_CERT_FILE: Nix 2.8 has no `ssl-cert-file`
   * setting, and later versions still take their default from that variable.
   */
  caFile?: string | undefined;
  /** netrc file with the HTTP Basic credentials for the cache (Nix's `netrc-file`). */
  netrcFile?: string | undefined;
}

export interface SubstituteOptions extends CacheTransport {
  substituters: readonly string[];
  trustedPublicKeys: readonly string[];
  /** Indirect GC root that keeps the realised closure alive. */
  gcRoot?: string;
  timeoutMs?: number;
  /** Aborting kills the fetch (the disk-space watchdog uses it). */
  signal?: AbortSignal;
}

export type SwitchAction = "switch" | "boot" | "test" | "dry-activate";

/**
 * Nix operations Ferry needs, each one argv array through the runner. Store
 * paths are validated here, at the last moment before they reach a command.
 */
export class Nix {
  constructor(
    private readonly runner: CommandRunner,
    private readonly env: Readonly<Record<string, string>> = {},
  ) {}

  private async run(
    argv: string[],
    code: ErrorCode,
    what: string,
    timeoutMs?: number,
    input?: string,
    stdoutLimit?: number,
    env: Readonly<Record<string, string>> = this.env,
  ): Promise<CommandResult> {
    const result = await this.runner.run({
      argv,
      env,
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
      ...(input === undefined ? {} : { input }),
      ...(stdoutLimit === undefined ? {} : { stdoutLimit }),
    });
    if (result.timedOut) {
      throw new FerryError(code === "E_ACTIVATION_FAILED" ? "E_ACTIVATION_TIMEOUT" : "E_COMMAND_TIMEOUT", `${what} timed out`, { output: outputTail(result) });
    }
    if (result.exitCode !== 0) {
      throw new FerryError(code, `${what} ${describeExit(result)}`, { output: outputTail(result) });
    }
    return result;
  }

  /**
   * Substitutes a closure from the given caches only, requiring signatures by
   * the given keys only: whatever a controller says, the host's own
   * configuration decides what it trusts.
   */
  async realise(path: string, options: SubstituteOptions): Promise<void> {
    assertStorePath(path);
    const argv = [
      "nix-store",
      "--realise",
      path,
      "--option",
      "substituters",
      options.substituters.join(" "),
      "--option",
      "trusted-public-keys",
      options.trustedPublicKeys.join(" "),
      "--option",
      "require-sigs",
      "true",
      // A path asked for before its upload finished must not stay "missing" for an hour.
      "--option",
      "narinfo-cache-negative-ttl",
      "0",
      "--option",
      "builders",
      "",
      "--option",
      "max-jobs",
      "0",
    ];
    argv.push(...transportArgs(options));
    if (options.gcRoot) argv.push("--add-root", options.gcRoot);
    const result = await this.runner.run({
      argv,
      env: this.transportEnv(options),
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    if (result.exitCode === 0 && !result.timedOut) return;
    if (options.signal?.aborted) throw toFerryError(options.signal.reason, "E_FETCH_FAILED");
    const output = outputTail(result);
    if (/HTTP error 401|401 Unauthorized/.test(output)) {
      throw new FerryError("E_CACHE_AUTH", `the binary cache refused this host's credentials while fetching ${path}`, { output });
    }
    const tls = /SSL certificate problem|SSL peer certificate|certificate verify failed|SSL: no alternative certificate subject name/.exec(output);
    if (tls) throw new FerryError(tlsCodeOfCurlOutput(output), `the substituter's TLS certificate was refused while fetching ${path}`, { output });
    if (/is not signed by any of the keys|lacks a signature by a trusted key/.test(output)) {
      throw new FerryError("E_UNSIGNED_PATH", `${path} (or part of its closure) is not signed by a trusted key`, { output });
    }
    if (/unable to download .*nix-cache-info|Couldn't connect|Could not resolve host|Couldn't resolve host|Connection refused/.test(output)) {
      throw new FerryError("E_FETCH_FAILED", `cannot reach the substituters while fetching ${path}`, { output });
    }
    if (/don't know how to build|cannot build|required to build .* but|does not exist|is not valid|max-jobs = 0/.test(output)) {
      throw new FerryError("E_PATH_NOT_IN_CACHE", `${path} (or part of its closure) is not in any substituter`, { output });
    }
    throw new FerryError(result.timedOut ? "E_COMMAND_TIMEOUT" : "E_FETCH_FAILED", `fetching ${path} ${describeExit(result)}`, { output });
  }

  /** The subset of `paths` this store does not hold yet. */
  async invalidPaths(paths: readonly string[]): Promise<string[]> {
    paths.forEach(assertStorePath);
    if (paths.length === 0) return [];
    const result = await this.run(
      ["nix-store", "--check-validity", "--print-invalid", ...paths],
      "E_COMMAND_FAILED",
      "nix-store --check-validity",
      undefined,
      undefined,
      LISTING_LIMIT,
    );
    return result.stdout.split("\n").filter(Boolean).map(assertStorePath);
  }

  async isValid(path: string): Promise<boolean> {
    assertStorePath(path);
    const result = await this.runner.run({ argv: ["nix-store", "--check-validity", path], env: this.env });
    return result.exitCode === 0;
  }

  async setProfile(profile: string, path: string): Promise<void> {
    assertStorePath(path);
    await this.run(["nix-env", "-p", profile, "--set", path], "E_PROFILE_FAILED", `nix-env --set ${path}`);
  }

  async switchToConfiguration(path: string, action: SwitchAction, timeoutMs: number, onSpawn?: (pid: number) => void): Promise<string> {
    assertStorePath(path);
    const result = await this.runner.run({ argv: [`${path}/bin/switch-to-configuration`, action], env: this.env, timeoutMs, ...(onSpawn ? { onSpawn } : {}) });
    const what = `${path}/bin/switch-to-configuration ${action}`;
    if (result.timedOut)
      throw new FerryError("E_ACTIVATION_TIMEOUT", `${what} did not finish within ${Math.round(timeoutMs / 1000)} s and was killed`, {
        output: outputTail(result),
      });
    if (result.exitCode !== 0) throw new FerryError("E_ACTIVATION_FAILED", `${what} ${describeExit(result)}`, { output: outputTail(result) });
    return outputTail(result);
  }

  /**
   * The closure of `path` as the substituter describes it, with signatures:
   * sizes are only worth what a trusted signature over them is worth.
   */
  async closureInfosFrom(path: string, substituter: string, transport: CacheTransport = {}): Promise<SignedPathInfo[]> {
    assertStorePath(path);
    const result = await this.run(
      ["nix", ...EXPERIMENTAL, "path-info", "--json", "--sigs", "--recursive", "--store", substituter, ...FRESH_NARINFO, ...transportArgs(transport), path],
      "E_FETCH_FAILED",
      `nix path-info --store ${substituter}`,
      120_000,
      undefined,
      LISTING_LIMIT,
      this.transportEnv(transport),
    );
    return parseSignedPathInfos(result.stdout);
  }

  /** NAR hash, size and references of valid paths of this store (`nix path-info --json`). */
  async pathInfos(paths: readonly string[]): Promise<{ path: string; narHash: string; narSize: number; references: string[] }[]> {
    paths.forEach(assertStorePath);
    if (paths.length === 0) return [];
    const result = await this.run(
      ["nix", ...EXPERIMENTAL, "path-info", "--json", ...paths],
      "E_COMMAND_FAILED",
      "nix path-info",
      undefined,
      undefined,
      LISTING_LIMIT,
    );
    const parsed = JSON.parse(result.stdout) as { path: string; narHash: string; narSize: number; references?: string[] }[];
    return parsed.map((entry) => ({
      path: assertStorePath(entry.path),
      narHash: String(entry.narHash),
      narSize: Number(entry.narSize),
      references: (entry.references ?? []).map(assertStorePath),
    }));
  }

  /** Every path of a valid closure with its signatures and what they cover, for checking them in-process. */
  async closureSignatures(path: string): Promise<SignedPathInfo[]> {
    assertStorePath(path);
    const result = await this.run(
      ["nix", ...EXPERIMENTAL, "path-info", "--json", "--sigs", "--recursive", path],
      "E_COMMAND_FAILED",
      "nix path-info --sigs",
      600_000,
      undefined,
      LISTING_LIMIT,
    );
    return parseSignedPathInfos(result.stdout);
  }

  /**
   * What a binary cache holds for these paths (`nix path-info --json --sigs
   * --store URL`): NAR hash, size, references and signatures of each path it
   * has; paths it lacks are left out.
   */
  async cachedPathInfos(url: string, paths: readonly string[], transport: CacheTransport = {}): Promise<SignedPathInfo[]> {
    paths.forEach(assertStorePath);
    if (paths.length === 0) return [];
    const argv = ["nix", ...EXPERIMENTAL, "path-info", "--json", "--sigs", "--store", url, ...FRESH_NARINFO, ...transportArgs(transport), ...paths];
    const result = await this.run(argv, "E_CACHE_UPLOAD", `nix path-info --store ${url}`, 600_000, undefined, LISTING_LIMIT, this.transportEnv(transport));
    return parseSignedPathInfos(result.stdout, { skipInvalid: true });
  }

  /**
   * Copies signatures of these paths from the store `from` into the store
   * `to` (the local store when absent). Nix skips a signature made for other
   * contents (NAR hash, size, references). Adding a signature grants
   * nothing: whoever relies on one verifies it.
   */
  async copySignatures(paths: readonly string[], stores: { from: string; to?: string } & CacheTransport): Promise<void> {
    paths.forEach(assertStorePath);
    if (paths.length === 0) return;
    const target = stores.to === undefined ? [] : ["--store", stores.to];
    await this.run(
      ["nix", ...EXPERIMENTAL, "store", "copy-sigs", ...target, "--substituter", stores.from, ...FRESH_NARINFO, ...transportArgs(stores), ...paths],
      "E_COMMAND_FAILED",
      `nix store copy-sigs --substituter ${stores.from}${stores.to === undefined ? "" : ` --store ${stores.to}`}`,
      600_000,
      undefined,
      undefined,
      this.transportEnv(stores),
    );
  }

  /** Keeps a store path alive through an indirect GC root at `root`. */
  async addGcRoot(path: string, root: string): Promise<void> {
    assertStorePath(path);
    await this.run(["nix-store", "--realise", path, "--add-root", root], "E_COMMAND_FAILED", `nix-store --add-root ${root}`);
  }

  async deleteOldGenerations(profile: string, keep: number): Promise<void> {
    await this.run(["nix-env", "-p", profile, "--delete-generations", `+${Math.max(1, Math.floor(keep))}`], "E_COMMAND_FAILED", "nix-env --delete-generations");
  }

  async collectGarbage(): Promise<string> {
    return outputTail(await this.run(["nix-store", "--gc"], "E_COMMAND_FAILED", "nix-store --gc", 3_600_000));
  }

  async closure(paths: readonly string[]): Promise<string[]> {
    paths.forEach(assertStorePath);
    const result = await this.run(
      ["nix-store", "--query", "--requisites", ...paths],
      "E_COMMAND_FAILED",
      "nix-store --query --requisites",
      undefined,
      undefined,
      LISTING_LIMIT,
    );
    return result.stdout.split("\n").filter(Boolean).map(assertStorePath);
  }

  async sign(keyFile: string, paths: readonly string[]): Promise<void> {
    paths.forEach(assertStorePath);
    await this.run(["nix", ...EXPERIMENTAL, "store", "sign", "--key-file", keyFile, ...paths], "E_COMMAND_FAILED", "nix store sign");
  }

  /**
   * Copies `paths` and, unless `noRecursive`, their closures to `url`. With
   * `noRecursive` every reference must already be in the destination (a
   * binary cache checks), so a caller that splits a closure orders the parts.
   */
  async copyTo(
    url: string,
    paths: readonly string[],
    transport: CacheTransport = {},
    options: { noRecursive?: boolean; env?: Readonly<Record<string, string>> } = {},
  ): Promise<void> {
    paths.forEach(assertStorePath);
    // Nix remembers which paths a cache holds for days; a recreated cache must be asked afresh.
    const argv = [
      "nix",
      ...EXPERIMENTAL,
      "copy",
      "--to",
      url,
      "--option",
      "narinfo-cache-positive-ttl",
      "0",
      "--option",
      "narinfo-cache-negative-ttl",
      "0",
      ...(options.noRecursive ? ["--no-recursive"] : []),
      ...paths,
    ];
    argv.push(...transportArgs(transport));
    const result = await this.runner.run({ argv, env: { ...this.transportEnv(transport), ...options.env } });
    if (result.exitCode === 0 && !result.timedOut) return;
    const output = outputTail(result);
    if (/SSL certificate problem|SSL peer certificate|certificate verify failed|SSL: no alternative certificate subject name/.test(output)) {
      throw new FerryError(tlsCodeOfCurlOutput(output), `the cache's TLS certificate was refused by nix copy --to ${url}`, { output });
    }
    throw new FerryError("E_CACHE_UPLOAD", `nix copy --to ${url} ${describeExit(result)}`, { output });
  }

  private transportEnv(transport: CacheTransport): Readonly<Record<string, string>> {
    return transport.caFile ? { ...this.env, NIX_SSL_CERT_FILE: transport.caFile } : this.env;
  }

  async generateKey(name: string, secretFile: string, publicFile: string): Promise<void> {
    await this.run(["nix-store", "--generate-binary-cache-key", name, secretFile, publicFile], "E_COMMAND_FAILED", "nix-store --generate-binary-cache-key");
  }
}

function transportArgs(transport: CacheTransport): string[] {
  return transport.netrcFile ? ["--option", "netrc-file", transport.netrcFile] : [];
}

/** curl's wording of a certificate Nix refused, mapped to the code a user acts on. */
function tlsCodeOfCurlOutput(output: string): ErrorCode {
  if (/certificate has expired|certificate is not yet valid/i.test(output)) return "E_TLS_EXPIRED";
  if (/subject name|does not match target host name|no alternative certificate subject name/i.test(output)) return "E_TLS_NAME_MISMATCH";
  return "E_TLS_UNTRUSTED";
}
