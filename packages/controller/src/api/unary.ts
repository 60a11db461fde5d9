import type { ServerUnaryCall, sendUnaryData } from "@grpc/grpc-js";
import { FerryError, type Logger } from "@ferry/core";
import type { Authenticator } from "../auth/authenticate.js";
import type { Principal } from "../auth/authorize.js";
import { admitCall } from "../auth/credentials.js";
import { RPC_REQUIREMENTS, type RpcName } from "../auth/endpoint-scopes.js";
import { toServiceError } from "./grpc-errors.js";

/** Authenticates a call (unary or streaming) and checks what its method requires (auth/endpoint-scopes.ts). */
export function admitRpc(authenticator: Authenticator, call: { metadata: { get(key: string): unknown[] } }, rpc: RpcName): Promise<Principal> {
  return admitCall(authenticator, call.metadata, RPC_REQUIREMENTS[rpc]);
}

/**
 * Wraps an async handler as a grpc-js unary handler: admit the caller for the
 * method, run the handler with the caller's token, map errors to status +
 * code trailer.
 */
export function unaryHandler(log: Logger, authenticator: Authenticator) {
  return <Req, Res>(rpc: RpcName, handler: (request: Req, caller: Principal) => Promise<Res>) =>
    (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
      let caller: Principal | undefined;
      admitRpc(authenticator, call, rpc)
        .then((principal) => {
          caller = principal;
          return handler(call.request, principal);
        })
        .then(
          (response) => callback(null, response),
          (error: unknown) => {
            log.info(
              { rpc, token: caller?.name, code: error instanceof FerryError ? error.code : "E_INTERNAL", err: (error as Error).message },
              "operator call refused",
            );
            callback(toServiceError(error));
          },
        );
    };
}
