import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { createSecureContext } from "node:tls";
import { FerryError, type ErrorCode } from "./errors.js";

/** Traffic to these names never leaves the machine, so plaintext exposes nothing. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  if (host === "localhost" || host.endsWith(".localhost")) return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  if (isIP(host) === 6) return host === "::1" || host.startsWith("::ffff:127.");
  return false;
}

const PLAINTEXT_SCHEMES = new Set(["http:", "ws:", "grpc:"]);

/**
 * Refuses a plaintext URL to anything but loopback: tokens would cross the
 * network in clear. `allowed` is the explicit opt-out; `howToAllow` names it.
 */
export function assertTransportAllowed(url: string, allowed: boolean, what: string, howToAllow: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new FerryError("E_BAD_ARGUMENT", `${what} is not a URL: ${JSON.stringify(url)}`);
  }
  if (!PLAINTEXT_SCHEMES.has(parsed.protocol) || allowed || isLoopbackHost(parsed.hostname)) return;
  const secure = parsed.protocol === "ws:" ? "wss://" : "https://";
  throw new FerryError(
    "E_INSECURE_TRANSPORT",
    `${what} ${url} is plaintext to a non-loopback address; use ${secure} with the controller's certificate, or ${howToAllow} on a network you trust`,
  );
}

/** Node's verification codes (error.code) for each failure a user can fix differently. */
const TLS_ERROR_CODES: Record<string, ErrorCode> = {
  CERT_HAS_EXPIRED: "E_TLS_EXPIRED",
  CERT_NOT_YET_VALID: "E_TLS_EXPIRED",
  ERR_TLS_CERT_ALTNAME_INVALID: "E_TLS_NAME_MISMATCH",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "E_TLS_UNTRUSTED",
  SELF_SIGNED_CERT_IN_CHAIN: "E_TLS_UNTRUSTED",
  DEPTH_ZERO_SELF_SIGNED_CERT: "E_TLS_UNTRUSTED",
  UNABLE_TO_GET_ISSUER_CERT: "E_TLS_UNTRUSTED",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "E_TLS_UNTRUSTED",
  CERT_SIGNATURE_FAILURE: "E_TLS_UNTRUSTED",
  CERT_UNTRUSTED: "E_TLS_UNTRUSTED",
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: "E_TLS_CLIENT_CERT",
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: "E_TLS_CLIENT_CERT",
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: "E_TLS_CLIENT_CERT",
};

/** The same failures as gRPC reports them: only the message survives its channel. */
const TLS_ERROR_MESSAGES: [RegExp, ErrorCode][] = [
  [/certificate has expired|certificate is not yet valid/i, "E_TLS_EXPIRED"],
  [/does not match certificate's altnames|Hostname\/IP does not match/i, "E_TLS_NAME_MISMATCH"],
  [
    /unable to verify the first certificate|self[- ]signed certificate|unable to get (local )?issuer certificate|certificate signature failure/i,
    "E_TLS_UNTRUSTED",
  ],
  [/alert certificate required|alert unknown ca|alert bad certificate|peer did not return a certificate/i, "E_TLS_CLIENT_CERT"],
];

/** The code of a TLS verification failure in `error` (a Node error or a message), if it is one. */
export function classifyTlsFailure(error: unknown): ErrorCode | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string" && code in TLS_ERROR_CODES) return TLS_ERROR_CODES[code];
  const message = error instanceof Error ? error.message : String(error);
  return TLS_ERROR_MESSAGES.find(([pattern]) => pattern.test(message))?.[1];
}

/** Reads a PEM file named by `what` (a flag or config key), refusing anything that is not PEM. */
export function readPemFile(file: string, what: string): Buffer {
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (error) {
    throw new FerryError("E_TLS_MATERIAL", `cannot read ${what} ${file}: ${(error as Error).message}`, { cause: error });
  }
  if (!pem.includes("-----BEGIN ")) throw new FerryError("E_TLS_MATERIAL", `${what} ${file} holds no PEM block`);
  return pem;
}

/** A file and the flag or config key that named it, for error messages. */
export interface TlsFile {
  file: string;
  what: string;
}

export interface TlsMaterial {
  cert?: Buffer;
  key?: Buffer;
  ca?: Buffer;
}

/**
 * Reads certificate, key and CA files and checks that OpenSSL accepts them
 * (the key belongs to the certificate, the CA file parses), so that a bad file
 * is reported by name at start-up or reload rather than at the first handshake.
 */
export function readTlsFiles(files: { cert?: TlsFile | undefined; key?: TlsFile | undefined; ca?: TlsFile | undefined }): TlsMaterial {
  const { cert, key, ca } = files;
  if (Boolean(cert) !== Boolean(key)) {
    const [given, missing] = cert ? [cert.what, "its key"] : [key?.what ?? "", "its certificate"];
    throw new FerryError("E_TLS_MATERIAL", `${given} needs ${missing} too: give both or neither`);
  }
  const material: TlsMaterial = {};
  const check = (options: TlsMaterial, which: string): void => {
    try {
      createSecureContext(options);
    } catch (error) {
      throw new FerryError("E_TLS_MATERIAL", `${which} not usable: ${(error as Error).message}`, { cause: error });
    }
  };
  if (cert && key) {
    material.cert = readPemFile(cert.file, cert.what);
    material.key = readPemFile(key.file, key.what);
    check({ cert: material.cert, key: material.key }, `${cert.what} ${cert.file} with ${key.what} ${key.file} is`);
  }
  if (ca) {
    material.ca = readPemFile(ca.file, ca.what);
    check({ ca: material.ca }, `${ca.what} ${ca.file} is`);
  }
  return material;
}
