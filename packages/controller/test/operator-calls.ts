// Shared by the token and scope tests: calls any method of the controller's
// gRPC services by its name, with a given token, and reports the Ferry error
// code it ended with ("ok" for success), as a client would see it.
import { Client, Metadata, credentials, type ServiceError } from "@grpc/grpc-js";
import { AccessServiceService, OperatorServiceService, SiteServiceService, type CreateTokenResponse } from "@ferry/protocol";

export const SERVICES = { OperatorService: OperatorServiceService, SiteService: SiteServiceService, AccessService: AccessServiceService } as const;

interface MethodDefinition {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  requestSerialize: (value: never) => Buffer;
  requestDeserialize: (bytes: Buffer) => unknown;
  responseDeserialize: (bytes: Buffer) => unknown;
}

/** Every method of every service, by its .proto name (the last part of its path). */
export function allMethods(): Map<string, MethodDefinition> {
  const methods = new Map<string, MethodDefinition>();
  for (const service of Object.values(SERVICES)) {
    for (const definition of Object.values(service) as MethodDefinition[]) methods.set(definition.path.split("/").at(-1) as string, definition);
  }
  return methods;
}

export interface CallResult {
  /** "ok", or the ferry-error-code trailer (the gRPC status name when there is none). */
  code: string;
  message: string;
  response?: unknown;
}

function resultOf(error: ServiceError | null, response?: unknown): CallResult {
  if (!error) return { code: "ok", message: "", response };
  const code = error.metadata?.get("ferry-error-code")[0];
  return { code: code === undefined ? `grpc-${error.code}` : String(code), message: error.details };
}

/** Calls `method` (e.g. "Deploy") with `request` merged over its default message; `token` undefined sends none. */
export function callMethod(address: string, method: string, request: Record<string, unknown>, token: string | undefined): Promise<CallResult> {
  const definition = allMethods().get(method);
  if (!definition) throw new Error(`no such method ${method}`);
  const client = new Client(address, credentials.createInsecure());
  const metadata = new Metadata();
  if (token !== undefined) metadata.set("authorization", `Bearer ${token}`);
  const message = { ...(definition.requestDeserialize(Buffer.alloc(0)) as object), ...request } as never;
  const serialize = (value: never): Buffer => definition.requestSerialize(value);
  const options = { deadline: new Date(Date.now() + 10_000) };
  return new Promise<CallResult>((resolve) => {
    const done = (result: CallResult): void => {
      client.close();
      resolve(result);
    };
    if (definition.requestStream) {
      const stream = client.makeClientStreamRequest(definition.path, serialize, definition.responseDeserialize, metadata, options, (error, response) =>
        done(resultOf(error, response)),
      );
      if (Object.keys(request).length > 0) stream.write(message);
      stream.end();
    } else if (definition.responseStream) {
      const stream = client.makeServerStreamRequest(definition.path, serialize, definition.responseDeserialize, message, metadata, options);
      const received: unknown[] = [];
      stream.on("data", (data: unknown) => {
        received.push(data);
        // A watch never ends by itself: its first message shows it was admitted.
        if (method === "WatchHosts") {
          stream.cancel();
          done({ code: "ok", message: "", response: received });
        }
      });
      stream.on("error", (error: ServiceError) => done(resultOf(error)));
      stream.on("end", () => done({ code: "ok", message: "", response: received }));
    } else {
      client.makeUnaryRequest(definition.path, serialize, definition.responseDeserialize, message, metadata, options, (error, response) =>
        done(resultOf(error, response)),
      );
    }
  });
}

/** Like callMethod, but fails unless the call succeeded. */
export async function mustCall<T>(address: string, method: string, request: Record<string, unknown>, token: string): Promise<T> {
  const result = await callMethod(address, method, request, token);
  if (result.code !== "ok") throw new Error(`${method} failed: ${result.code}: ${result.message}`);
  return result.response as T;
}

/** Creates a named token with the admin token; returns its secret. */
export async function createToken(
  address: string,
  adminToken: string,
  name: string,
  scopes: string[],
  limits: { tags?: string[]; environments?: string[]; expiresInMs?: number } = {},
): Promise<string> {
  const response = await mustCall<CreateTokenResponse>(address, "CreateToken", { name, scopes, ...limits }, adminToken);
  return response.secret;
}
