import type { ServerUnaryCall, sendUnaryData } from "@grpc/grpc-js";
import { FerryError, tokenMatchesHash, type Logger } from "@ferry/core";
import { toServiceError } from "./grpc-errors.js";

export function authenticate(call: { metadata: { get(key: string): unknown[] } }, adminTokenHash: string): void {
  const header = String(call.metadata.get("authorization")[0] ?? "");
  const token = header.startsWith("Bearer ") ? header.slice("Bearer ".length) : "";
  if (!token || !tokenMatchesHash(token, adminTokenHash)) throw new FerryError("E_AUTH", "missing or wrong operator token");
}

/** Wraps an async handler as a grpc-js unary handler: authenticate, run, map errors to status + code trailer. */
export function unaryHandler(log: Logger, adminTokenHash: string) {
  return <Req, Res>(name: string, handler: (request: Req) => Promise<Res>) =>
    (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
      Promise.resolve()
        .then(() => authenticate(call, adminTokenHash))
        .then(() => handler(call.request))
        .then(
          (response) => callback(null, response),
          (error: unknown) => {
            log.info({ rpc: name, code: error instanceof FerryError ? error.code : "E_INTERNAL", err: (error as Error).message }, "operator call refused");
            callback(toServiceError(error));
          },
        );
    };
}
