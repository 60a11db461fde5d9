import { readFileSync } from "node:fs";
import { Metadata, credentials, status, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import { FerryError, isErrorCode, parseHostPort } from "@ferry/core";
import { OperatorServiceClient } from "@ferry/protocol";

export interface ConnectionFlags {
  controller?: string;
  tokenFile?: string;
}

export interface OperatorConnection {
  address: string;
  host: string;
  token: string;
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
  if (error.code === status.UNAVAILABLE || error.code === status.DEADLINE_EXCEEDED) {
    return new FerryError("E_CONTROLLER_UNREACHABLE", `cannot reach the controller: ${error.details || error.message}`);
  }
  return new FerryError("E_INTERNAL", error.details || error.message);
}

/** Resolves address and token from flags, then the environment. */
export function connect(flags: ConnectionFlags): OperatorConnection {
  const address = flags.controller ?? process.env["FERRY_CONTROLLER"];
  if (!address) throw new FerryError("E_BAD_ARGUMENT", "no controller address: pass --controller HOST:PORT or set FERRY_CONTROLLER");
  const { host } = parseHostPort(address, "--controller");
  const tokenFile = flags.tokenFile ?? process.env["FERRY_TOKEN_FILE"];
  if (!tokenFile) throw new FerryError("E_AUTH", "no operator token: pass --token-file FILE or set FERRY_TOKEN_FILE");
  let token: string;
  try {
    token = readFileSync(tokenFile, "utf8").trim();
  } catch (error) {
    throw new FerryError("E_AUTH", `cannot read token file ${tokenFile}: ${(error as Error).message}`);
  }
  const client = new OperatorServiceClient(address, credentials.createInsecure());
  const metadata = (): Metadata => {
    const m = new Metadata();
    m.set("authorization", `Bearer ${token}`);
    return m;
  };
  return {
    address,
    host,
    token,
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

/** Opens a connection from a verb's --controller/--token-file flags, runs `work`, and always closes it. */
export async function withConnection<T>(
  flags: { controller?: string; "token-file"?: string },
  work: (connection: OperatorConnection) => Promise<T>,
): Promise<T> {
  const connection = connect({ controller: flags.controller, tokenFile: flags["token-file"] });
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
  return `http://${host}:${info.httpPort}${info.cachePath}`;
}

export type Stream<T> = ClientReadableStream<T>;
