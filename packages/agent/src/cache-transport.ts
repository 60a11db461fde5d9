import { readFileSync } from "node:fs";
import { join } from "node:path";
import { FerryError, classifyTlsFailure, formatNetrc, parseStorePath, readPemFile, writeFileAtomic, type CacheTransport } from "@ferry/core";
import { requestHttp } from "./http-request.js";

/** What fetching from the host's caches needs to know. */
interface TransportSettings {
  hostName: string;
  stateDir: string;
  /** Empty on a standalone host, which signs in nowhere. */
  controllerUrls: readonly string[];
  substituters?: readonly string[] | undefined;
  tokenFile?: string | undefined;
  caFile?: string | undefined;
}

const NETRC_FILE = "cache.netrc";
const PROBE_TIMEOUT_MS = 10_000;

/** The hosts of the controller's replicas; none on a standalone host, which has no controller to sign in to. */
function controllerHosts(config: TransportSettings): Set<string> {
  return new Set(config.controllerUrls.map((url) => new URL(url).hostname));
}

/**
 * The substituters that get this host's credentials: only those on one of
 * the controllers' own hosts, which already see the token on the agent link
 * (any replica may hold it). A third-party cache never does.
 */
function credentialedSubstituters(config: TransportSettings): URL[] {
  const hosts = controllerHosts(config);
  return (config.substituters ?? [])
    .map((url) => new URL(url))
    .filter((url) => (url.protocol === "https:" || url.protocol === "http:") && hosts.has(url.hostname));
}

function describeHosts(hosts: Set<string>): string {
  return hosts.size === 0 ? " (it has none)" : `, ${[...hosts].join(", ")}`;
}

function readToken(config: TransportSettings): string {
  if (config.tokenFile === undefined)
    throw new FerryError("E_BAD_CONFIG", "a substituter on the controller's host needs the agent token, and tokenFile is not set");
  try {
    return readFileSync(config.tokenFile, "utf8").trim();
  } catch (error) {
    throw new FerryError("E_AUTH", `cannot read the agent token ${config.tokenFile}: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * How Nix fetches from this host's substituters: the configured CA, and a
 * netrc file (0600, in the state directory) that signs this host in to a
 * private controller cache with its name and agent token. Written before
 * every fetch, so a replaced token file takes effect at once.
 */
export function cacheTransport(config: TransportSettings): CacheTransport {
  const ca = config.caFile ? { caFile: config.caFile } : {};
  const machines = [...new Set(credentialedSubstituters(config).map((url) => url.hostname))];
  if (machines.length === 0) return ca;
  const token = readToken(config);
  const netrcFile = join(config.stateDir, NETRC_FILE);
  writeFileAtomic(netrcFile, formatNetrc(machines.map((machine) => ({ machine, login: config.hostName, password: token }))), 0o600);
  return { ...ca, netrcFile };
}

/**
 * Nix 2.8 reports a refused read as a missing path and a refused certificate
 * without its reason. After a failed fetch the agent asks each substituter for
 * the path's narinfo itself, with the same CA and credentials, to name the
 * real cause: E_CACHE_AUTH for a 401, the E_TLS_* code of a refused
 * certificate. Undefined when every substituter answers normally.
 */
export async function diagnoseSubstituters(config: TransportSettings, storePath: string): Promise<FerryError | undefined> {
  const { hash } = parseStorePath(storePath);
  const credentialed = new Set(credentialedSubstituters(config).map((url) => url.href));
  const ca = config.caFile ? readPemFile(config.caFile, "caFile") : undefined;
  for (const substituter of config.substituters ?? []) {
    const base = new URL(substituter.endsWith("/") ? substituter : `${substituter}/`);
    if (base.protocol !== "https:" && base.protocol !== "http:") continue;
    const url = new URL(`${hash}.narinfo`, base);
    const signsIn = credentialed.has(new URL(substituter).href);
    const headers: Record<string, string> = signsIn
      ? { authorization: `Basic ${Buffer.from(`${config.hostName}:${readToken(config)}`).toString("base64")}` }
      : {};
    try {
      const response = await requestHttp(url, { method: "HEAD", headers, ca, timeoutMs: PROBE_TIMEOUT_MS, maxBodyBytes: 0 });
      if (response.statusCode === 401) {
        const why = signsIn
          ? `refused the credentials of ${config.hostName} (HTTP 401)`
          : `wants credentials (HTTP 401), and this host signs in only to substituters on its controllers' hosts${describeHosts(controllerHosts(config))}`;
        return new FerryError("E_CACHE_AUTH", `${substituter} ${why}`);
      }
    } catch (error) {
      const code = classifyTlsFailure(error) ?? classifyTlsFailure((error as { cause?: unknown }).cause);
      if (code) return new FerryError(code, `TLS with ${base.origin} failed: ${(error as Error).message}`, { cause: error });
    }
  }
  return undefined;
}
