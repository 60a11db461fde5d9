import { ServerInterceptingCall, status as GrpcStatus, type ServerInterceptor } from "@grpc/grpc-js";
import { isErrorCode } from "@ferry/core";
import { RPC_REQUIREMENTS } from "../auth/endpoint-scopes.js";
import { ERROR_CODE_TRAILER } from "../api/grpc-errors.js";
import type { ControllerMetrics } from "./registry.js";

const METHODS: ReadonlySet<string> = new Set(Object.keys(RPC_REQUIREMENTS));

/**
 * A server interceptor that times every operator call from its arrival to its
 * status, labelled by method name (from the service table, so a client
 * calling made-up paths adds no series) and by how it ended: "ok", the
 * Ferry error code of its trailer, or the gRPC status name. A call the
 * client cancels ends without a status and is not recorded.
 */
export function grpcMetricsInterceptor(metrics: ControllerMetrics): ServerInterceptor {
  return (descriptor, call) => {
    const started = process.hrtime.bigint();
    const name = descriptor.path.split("/").at(-1) ?? "";
    const method = METHODS.has(name) ? name : "other";
    return new ServerInterceptingCall(call, {
      sendStatus(status, next) {
        const ferryCode = String(status.metadata?.get(ERROR_CODE_TRAILER)[0] ?? "");
        const code = status.code === GrpcStatus.OK ? "ok" : isErrorCode(ferryCode) ? ferryCode : (GrpcStatus[status.code] ?? "UNKNOWN");
        metrics.grpcCall(method, code, Number(process.hrtime.bigint() - started) / 1e9);
        if (method === "PublishBundle") {
          const failed = status.code === GrpcStatus.INTERNAL || status.code === GrpcStatus.UNKNOWN;
          metrics.bundleImport("rpc", status.code === GrpcStatus.OK ? "imported" : failed ? "failed" : "refused");
        }
        next(status);
      },
    });
  };
}
