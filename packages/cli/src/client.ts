import { Metadata, status, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import { FerryError, classifyTlsFailure, isErrorCode, readTextFile } from "@ferry/core";
import { OperatorServiceClient } from "@ferry/protocol";
import { resolveConnectionSettings, type ConnectionFlags } from "./connection-settings.js";
import { probeHttp1 } from "./http-probe.js";
import { CONTROLLER } from "./spec/local.js";
import { controllerTransport, type ControllerTransport } from "./transport.js";

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

/**
 * grpc-js words a failed connection as "No connection established. Last
 * error: … (timestamp). Resolution note: " with an empty note; only the cause
 * is worth showing.
 */
export function cleanGrpcDetails(details: string): string {
  return details
    .replace(/\.?\s*Resolution note:\s*$/s, "")
    .replace(/\.?\s*Resolution note:\s*(.+)$/s, " ($1)")
    .replace(/^No connection established\. Last error: (?:Error: )?/, "")
    .replace(/ \(\d{4}-\d\d-\d\dT[\d:.]+Z\)/, "")
    .trim();
}

export function toCliError(error: ServiceError, address?: string): FerryError {
  const code = String(error.metadata?.get("ferry-error-code")[0] ?? "");
  const details = cleanGrpcDetails(error.details || error.message);
  if (isErrorCode(code)) return new FerryError(code, details);
  const tls = error.code === status.UNAVAILABLE ? classifyTlsFailure(error.details) : undefined;
  if (tls) return new FerryError(tls, `TLS with the controller failed: ${details}`);
  if (error.code === status.UNAVAILABLE || error.code === status.DEADLINE_EXCEEDED) {
    return new FerryError("E_CONTROLLER_UNREACHABLE", `cannot reach the controller${address ? ` at ${address}` : ""}: ${details}`);
  }
  return new FerryError("E_INTERNAL", details);
}

/** Addresses this process dialled, so a protocol error can be explained after the fact, wherever it surfaced. */
const dialled = new Set<string>();

/** Resolves address and token (flag, else environment, else context) and opens a client. */
export function connect(flags: ConnectionFlags): OperatorConnection {
  const settings = resolveConnectionSettings(flags);
  if (!settings.controller)
    throw new FerryError(
      "E_BAD_ARGUMENT",
      "no controller address: pass --controller HOST:PORT, set FERRY_CONTROLLER, or make a context (ferry context set NAME --controller HOST:PORT --token-file FILE)",
    );
  const transport = controllerTransport({
    controller: settings.controller.value,
    ca: settings.ca?.value,
    clientCert: settings.clientCert?.value,
    clientKey: settings.clientKey?.value,
    insecure: settings.insecure,
  });
  const { address, host } = transport;
  if (!settings.tokenFile) throw new FerryError("E_AUTH", "no operator token: pass --token-file FILE, set FERRY_TOKEN_FILE, or name it in a context");
  const tokenFile = settings.tokenFile;
  let token: string;
  try {
    token = readTextFile(tokenFile.value, "operator token file").trim();
  } catch (error) {
    if (error instanceof FerryError && tokenFile.from.startsWith("context")) throw new FerryError(error.code, `${error.message} (named by ${tokenFile.from})`);
    throw error;
  }
  if (token === "") throw new FerryError("E_AUTH", `operator token file ${tokenFile.value} is empty`);
  dialled.add(address);
  // A deploy or rollout of tens of thousands of hosts answers with every host's status: more than gRPC's default 4 MiB.
  const client = new OperatorServiceClient(address, transport.credentials, { "grpc.max_receive_message_length": 64 * 1024 * 1024 });
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
          error ? reject(toCliError(error, address)) : resolve(response),
        );
      });
    },
    close: () => client.close(),
  };
}

/** Opens a connection from a verb's connection flags, runs `work`, and always closes it. */
export async function withConnection<T>(flags: ConnectionFlags, work: (connection: OperatorConnection) => Promise<T>): Promise<T> {
  const connection = connect(flags);
  try {
    return await work(connection);
  } finally {
    connection.close();
  }
}

/**
 * A gRPC client that reaches an HTTP/1.1 server sees only "Protocol error".
 * The usual cause is the controller's other port: ask that address over
 * HTTP/1.1 and say so.
 */
export async function explainFailure(error: unknown): Promise<unknown> {
  if (!(error instanceof FerryError) || error.code !== "E_CONTROLLER_UNREACHABLE" || !/protocol error/i.test(error.message)) return error;
  for (const address of dialled) {
    const answer = await probeHttp1(address);
    if (!answer) continue;
    const grpcDefault = CONTROLLER.flags["grpc-listen"].default;
    const what = answer.ferryHealthz ? "that is the controller's agent/cache port (its --listen)" : "it is not a Ferry operator API";
    return new FerryError(
      "E_NOT_OPERATOR_PORT",
      `${address} answers HTTP/1.1: ${what}; the operator API listens on the controller's --grpc-listen (default ${grpcDefault})`,
      { cause: error },
    );
  }
  return error;
}

export type Stream<T> = ClientReadableStream<T>;

/** The binary cache's URL, as the controller advertises it or derived from the address the CLI dialled. */
export async function discoverCacheUrl(connection: OperatorConnection): Promise<string> {
  const info = await connection.call(connection.client.getInfo, {});
  if (info.publicUrl) return `${info.publicUrl.replace(/\/$/, "")}${info.cachePath}`;
  const host = connection.host.includes(":") ? `[${connection.host}]` : connection.host;
  return `${info.tls ? "https" : "http"}://${host}:${info.httpPort}${info.cachePath}`;
}
