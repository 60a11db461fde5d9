import type { Server as HttpsServer, ServerOptions as HttpsServerOptions } from "node:https";
import type { TLSSocket } from "node:tls";
import { experimental, type ServerCredentials } from "@grpc/grpc-js";
import { readTlsFiles, type Logger } from "@ferry/core";

export interface ControllerTlsFiles {
  /** PEM certificate, optionally followed by its intermediate chain. */
  certFile: string;
  keyFile: string;
  /** When set, the gRPC port takes only operators presenting a certificate signed by this CA. */
  clientCaFile?: string;
  /** When set, the agent endpoint takes only agents presenting a certificate signed by this CA. */
  agentClientCaFile?: string;
}

interface Material {
  cert: Buffer;
  key: Buffer;
  clientCa?: Buffer;
  agentClientCa?: Buffer;
}

type CaListener = Parameters<experimental.CertificateProvider["addCaCertificateListener"]>[0];
type IdentityListener = Parameters<experimental.CertificateProvider["addIdentityCertificateListener"]>[0];

function load(files: ControllerTlsFiles): Material {
  const identity = readTlsFiles({ cert: { file: files.certFile, what: "--tls-cert" }, key: { file: files.keyFile, what: "--tls-key" } });
  const clientCa = files.clientCaFile ? readTlsFiles({ ca: { file: files.clientCaFile, what: "--client-ca" } }).ca : undefined;
  const agentClientCa = files.agentClientCaFile ? readTlsFiles({ ca: { file: files.agentClientCaFile, what: "--agent-client-ca" } }).ca : undefined;
  return {
    cert: identity.cert as Buffer,
    key: identity.key as Buffer,
    ...(clientCa ? { clientCa } : {}),
    ...(agentClientCa ? { agentClientCa } : {}),
  };
}

/**
 * The controller's certificates, read from files at start and again on
 * reload. A reload swaps the secure context of both listeners for new
 * handshakes only: connections already open (agent WebSockets, gRPC watch
 * streams) keep the session they negotiated and are not dropped.
 *
 * gRPC gets the material through grpc-js's (experimental) CertificateProvider
 * API, the one way to change a bound server's certificate without rebinding.
 */
export class ControllerTls implements experimental.CertificateProvider {
  private material: Material;
  private readonly httpsServers = new Set<HttpsServer>();
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();

  constructor(
    private readonly files: ControllerTlsFiles,
    private readonly log: Logger,
  ) {
    this.material = load(files);
  }

  get requiresAgentCertificate(): boolean {
    return this.files.agentClientCaFile !== undefined;
  }

  /**
   * Options for the agent/cache listener. With an agent CA, a client
   * certificate is asked for but not required at the handshake: Nix (cache
   * reads and uploads) cannot present one, so only the agent endpoint insists.
   */
  httpsOptions(): HttpsServerOptions {
    return { ...this.httpsContext(), requestCert: this.requiresAgentCertificate, rejectUnauthorized: false };
  }

  private httpsContext(): { cert: Buffer; key: Buffer; ca?: Buffer } {
    return { cert: this.material.cert, key: this.material.key, ...(this.material.agentClientCa ? { ca: this.material.agentClientCa } : {}) };
  }

  attachHttps(server: HttpsServer): void {
    this.httpsServers.add(server);
    server.once("close", () => this.httpsServers.delete(server));
  }

  /** Whether an agent's socket presented a certificate its CA signed (true when none is required). */
  agentCertificateAccepted(socket: TLSSocket): boolean {
    return !this.requiresAgentCertificate || socket.authorized;
  }

  grpcCredentials(): ServerCredentials {
    // grpc-js passes its first argument on as the identity provider and the
    // second as the CA provider, whatever their declared names say; this
    // object is both, so the order cannot go wrong.
    return experimental.createCertificateProviderServerCredentials(this, this.files.clientCaFile ? this : null, this.files.clientCaFile !== undefined);
  }

  /** Re-reads every file; on any error the certificates in use stay as they were. */
  reload(): void {
    const next = load(this.files);
    this.material = next;
    for (const server of this.httpsServers) server.setSecureContext(this.httpsContext());
    for (const listener of this.identityListeners) listener(this.identity());
    for (const listener of this.caListeners) listener(this.clientCa());
    this.log.info({ certFile: this.files.certFile }, "TLS certificates reloaded");
  }

  private identity(): experimental.IdentityCertificateUpdate {
    return { certificate: this.material.cert, privateKey: this.material.key };
  }

  private clientCa(): experimental.CaCertificateUpdate | null {
    return this.material.clientCa ? { caCertificate: this.material.clientCa } : null;
  }

  // grpc-js registers these listeners before it starts watching for updates:
  // a synchronous first update would be lost, so it is delivered a tick later.
  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    queueMicrotask(() => this.caListeners.has(listener) && listener(this.clientCa()));
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    queueMicrotask(() => this.identityListeners.has(listener) && listener(this.identity()));
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }
}
