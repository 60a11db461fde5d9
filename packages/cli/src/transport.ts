import { isIP } from "node:net";
import { credentials, type ChannelCredentials } from "@grpc/grpc-js";
import { FerryError, assertTransportAllowed, parseHostPort, readTlsFiles, type TlsMaterial } from "@ferry/core";

/** How the CLI reaches the controller: each field from a flag, the environment or a CLI context. */
export interface TransportSettings {
  /** `https://HOST:PORT` or `grpcs://HOST:PORT` for TLS; `HOST:PORT` (or `http://`, `grpc://`) for plaintext. */
  controller: string;
  /** CA bundle that signed the controller's certificate; the system trust store when absent. */
  ca?: string | undefined;
  clientCert?: string | undefined;
  clientKey?: string | undefined;
  /** Allows plaintext to a non-loopback controller. */
  insecure?: boolean | undefined;
}

export interface ControllerTransport {
  /** HOST:PORT as gRPC dials it. */
  address: string;
  host: string;
  secure: boolean;
  credentials: ChannelCredentials;
  /** The same trust and client certificate, for HTTPS requests to the controller (cache, bundle upload). */
  tls: TlsMaterial;
  /** The CA file, for Nix (`nix copy` verifies the cache's certificate with it). */
  caFile?: string;
}

const SECURE_SCHEMES = new Set(["https", "grpcs"]);
const PLAIN_SCHEMES = new Set(["http", "grpc"]);

/**
 * Turns connection settings into gRPC credentials and an address. A scheme
 * chooses TLS; a bare HOST:PORT is plaintext and, like http:// and grpc://,
 * allowed only to loopback unless `insecure` says otherwise.
 */
export function controllerTransport(settings: TransportSettings): ControllerTransport {
  const scheme = /^([a-z]+):\/\//.exec(settings.controller)?.[1];
  if (scheme !== undefined && !SECURE_SCHEMES.has(scheme) && !PLAIN_SCHEMES.has(scheme)) {
    throw new FerryError("E_BAD_ARGUMENT", `--controller: unknown scheme ${scheme}:// (use https://, grpcs:// or HOST:PORT)`);
  }
  const address = (scheme === undefined ? settings.controller : settings.controller.slice(scheme.length + 3)).replace(/\/$/, "");
  const { host } = parseHostPort(address, "--controller");
  const secure = scheme !== undefined && SECURE_SCHEMES.has(scheme);
  if (!secure) {
    if (settings.ca || settings.clientCert || settings.clientKey) {
      throw new FerryError("E_BAD_ARGUMENT", `--ca, --client-cert and --client-key apply to TLS: dial https://${address} or grpcs://${address}`);
    }
    assertTransportAllowed(`grpc://${address}`, settings.insecure === true, "--controller", "pass --insecure");
    return { address, host, secure, credentials: credentials.createInsecure(), tls: {} };
  }
  // grpc-js sends the dialled IP address as the TLS server name, and Node
  // prints a deprecation warning for that on every run; a user cannot act on it.
  if (isIP(host) !== 0) process.noDeprecation = true;
  const tls = readTlsFiles({
    ca: settings.ca ? { file: settings.ca, what: "--ca" } : undefined,
    cert: settings.clientCert ? { file: settings.clientCert, what: "--client-cert" } : undefined,
    key: settings.clientKey ? { file: settings.clientKey, what: "--client-key" } : undefined,
  });
  return {
    address,
    host,
    secure,
    credentials: credentials.createSsl(tls.ca ?? null, tls.key ?? null, tls.cert ?? null),
    tls,
    ...(settings.ca ? { caFile: settings.ca } : {}),
  };
}
