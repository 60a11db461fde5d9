import { readFileSync } from "node:fs";
import { Metadata, status, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import { FerryError, classifyTlsFailure, isErrorCode } from "@ferry/core";
import { OperatorServiceClient } from "@ferry/protocol";
import { controllerTransport, type ControllerTransport } from "./transport.js";

export interface ConnectionFlags {
  controller?: string | undefined;
  tokenFile?: string | undefined;
  ca?: string | undefined;
  clientCert?: string | undefined;
  clientKey?: string | undefined;
  insecure?: boolean | undefined;
}

export interface OperatorConnection {
  address: string;
  host: string;
  token: string;
  transport: ControllerTransport;
  client: OperatorServiceClient;
  metadata(): Metadata;
  call<Req, Res>(
    method: (request: Req, metadata: Metadata, options: { deadline: Date }, callback: (error: ServiceError | null, response: Res) => void) => unknown,
    request: Req,
  ): Promise<Res>;
  close(): void;
}

export function toCliError(error: ServiceError): FerryError {
  const code = String(error.metadata?.get("ferry-error-code")[0] ?? "");
  if (isErrorCode(code)) return new FerryError(code, error.details || error.message);
  const tls = error.code === status.UNAVAILABLE ? classifyTlsFailure(error.details) : undefined;
  if (tls) return new FerryError(tls, `TLS with the controller failed: ${error.details}`);
  if (error.code === status.UNAVAILABLE || error.code === status.DEADLINE_EXCEEDED) {
    return new FerryError("E_CONTROLLER_UNREACHABLE", `cannot reach the controller: ${error.details || error.message}`);
  }
  return new FerryError("E_INTERNAL", error.details || error.message);
}

/** Resolves address, TLS settings and token from flags, then the environment. */
export function connect(flags: ConnectionFlags): OperatorConnection {
  const controller = flags.controller ?? process.env["FERRY_CONTROLLER"];
  if (!controller) throw new FerryError("E_BAD_ARGUMENT", "no controller address: pass --controller HOST:PORT or set FERRY_CONTROLLER");
  const transport = controllerTransport({
    controller,
    ca: flags.ca ?? process.env["FERRY_CA_FILE"],
    clientCert: flags.clientCert ?? process.env["FERRY_CLIENT_CERT"],
    clientKey: flags.clientKey ?? process.env["FERRY_CLIENT_KEY"],
    insecure: flags.insecure || process.env["FERRY_INSECURE"] === "1",
  });
  const { address, host } = transport;
  const tokenFile = flags.tokenFile ?? process.env["FERRY_TOKEN_FILE"];
  if (!tokenFile) throw new FerryError("E_AUTH", "no operator token: pass --token-file FILE or set FERRY_TOKEN_FILE");
  let token: string;
  try {
    token = readFileSync(tokenFile, "utf8").trim();
  } catch (error) {
    throw new FerryError("E_AUTH", `cannot read token file ${tokenFile}: ${(error as Error).message}`);
  }
  const client = new OperatorServiceClient(address, transport.credentials);
  const metadata = (): Metadata => {
    const m = new Metadata();
    m.set("authorization", `Bearer ${token}`);
    return m;
  };
  return {
    address,
    host,
    token,
    transport,
    client,
    metadata,
    call(method, request) {
      return new Promise((resolve, reject) => {
        method.call(client, request, metadata(), { deadline: new Date(Date.now() + 30_000) }, (error, response) =>
          error ? reject(toCliError(error)) : resolve(response),
        );
      });
    },
    close: () => client.close(),
  };
}

/** A verb's connection flags (CONNECTION_OPTIONS), as connect() takes them. */
export function connectionFlags(flags: ConnectionOptionValues): ConnectionFlags {
  return {
    controller: flags.controller,
    tokenFile: flags["token-file"],
    ca: flags.ca,
    clientCert: flags["client-cert"],
    clientKey: flags["client-key"],
    insecure: flags.insecure,
  };
}

export interface ConnectionOptionValues {
  controller?: string | undefined;
  "token-file"?: string | undefined;
  ca?: string | undefined;
  "client-cert"?: string | undefined;
  "client-key"?: string | undefined;
  insecure?: boolean | undefined;
}

/** Opens a connection from a verb's connection flags, runs `work`, and always closes it. */
export async function withConnection<T>(flags: ConnectionOptionValues, work: (connection: OperatorConnection) => Promise<T>): Promise<T> {
  const connection = connect(connectionFlags(flags));
  try {
    return await work(connection);
  } finally {
    connection.close();
  }
}

/** The binary cache's URL, as the controller advertises it or derived from the address the CLI dialled. */
export async function discoverCacheUrl(connection: OperatorConnection): Promise<string> {
  const info = await connection.call(connection.client.getInfo, {});
  if (info.publicUrl) return `${info.publicUrl.replace(/\/$/, "")}${info.cachePath}`;
  const host = connection.host.includes(":") ? `[${connection.host}]` : connection.host;
  return `${info.tls ? "https" : "http"}://${host}:${info.httpPort}${info.cachePath}`;
}

export type Stream<T> = ClientReadableStream<T>;
