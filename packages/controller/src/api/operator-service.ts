import { randomBytes } from "node:crypto";
import type { EventEmitter } from "node:events";
import type { ServerUnaryCall, ServerWritableStream, UntypedServiceImplementation, sendUnaryData } from "@grpc/grpc-js";
import { FERRY_VERSION, FerryError, assertHostName, assertStorePath, assertTag, generateToken, hashToken, tokenMatchesHash, type Logger } from "@ferry/core";
import {
  ActivationMode,
  PROTOCOL_VERSION,
  type AddHostRequest,
  type AddHostResponse,
  type DeployRequest,
  type DeployResponse,
  type GetInfoResponse,
  type ListHostsRequest,
  type ListHostsResponse,
  type OperatorServiceServer,
  type RemoveHostRequest,
  type RemoveHostResponse,
  type WatchHostsRequest,
  type WatchHostsResponse,
} from "@ferry/protocol";
import type { BinaryCache } from "../cache/binary-cache.js";
import type { AgentHub } from "../hub/agent-hub.js";
import type { StateStore } from "../store/state-store.js";
import { toHostStatus } from "./host-status.js";
import { toServiceError } from "./grpc-errors.js";

export interface OperatorServiceDeps {
  store: StateStore;
  hub: AgentHub;
  cache: BinaryCache;
  log: Logger;
  adminTokenHash: string;
  hostEvents: EventEmitter;
  info: Omit<GetInfoResponse, "version" | "protocolVersion">;
  now?: () => number;
}

function newDeploymentId(nowMs: number): string {
  return `d-${nowMs.toString(36)}-${randomBytes(3).toString("hex")}`;
}

/** Operator gRPC handlers: every call authenticates, validates, then acts. */
export function createOperatorService(deps: OperatorServiceDeps): OperatorServiceServer & UntypedServiceImplementation {
  const now = deps.now ?? Date.now;

  function authenticate(call: { metadata: { get(key: string): unknown[] } }): void {
    const header = String(call.metadata.get("authorization")[0] ?? "");
    const token = header.startsWith("Bearer ") ? header.slice("Bearer ".length) : "";
    if (!token || !tokenMatchesHash(token, deps.adminTokenHash)) throw new FerryError("E_AUTH", "missing or wrong operator token");
  }

  function unary<Req, Res>(name: string, handler: (request: Req) => Promise<Res>) {
    return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
      Promise.resolve()
        .then(() => authenticate(call))
        .then(() => handler(call.request))
        .then(
          (response) => callback(null, response),
          (error: unknown) => {
            deps.log.info({ rpc: name, code: error instanceof FerryError ? error.code : "E_INTERNAL", err: (error as Error).message }, "operator call refused");
            callback(toServiceError(error));
          },
        );
    };
  }

  async function statuses(names: readonly string[]) {
    names.forEach(assertHostName);
    return (await deps.store.listHosts(names)).map((record) => toHostStatus(record, deps.hub.isOnline(record.name)));
  }

  return {
    getInfo: unary("GetInfo", async (): Promise<GetInfoResponse> => ({ version: FERRY_VERSION, protocolVersion: PROTOCOL_VERSION, ...deps.info })),

    addHost: unary("AddHost", async (request: AddHostRequest): Promise<AddHostResponse> => {
      const name = assertHostName(request.name);
      const tags = request.tags.map(assertTag);
      const token = generateToken();
      const record = await deps.store.addHost(name, hashToken(token), tags, now());
      deps.log.info({ host: name, tags }, "host added");
      return { host: toHostStatus(record, false), agentToken: token };
    }),

    removeHost: unary("RemoveHost", async (request: RemoveHostRequest): Promise<RemoveHostResponse> => {
      const name = assertHostName(request.name);
      await deps.store.removeHost(name);
      deps.hub.disconnect(name, "host removed by operator");
      deps.log.info({ host: name }, "host removed");
      return {};
    }),

    listHosts: unary("ListHosts", async (request: ListHostsRequest): Promise<ListHostsResponse> => ({ hosts: await statuses(request.names) })),

    deploy: unary("Deploy", async (request: DeployRequest): Promise<DeployResponse> => {
      if (request.targets.length === 0) throw new FerryError("E_BAD_ARGUMENT", "deploy needs at least one HOST=STOREPATH");
      const seen = new Set<string>();
      for (const target of request.targets) {
        assertHostName(target.hostName);
        assertStorePath(target.storePath);
        if (seen.has(target.hostName)) throw new FerryError("E_BAD_ARGUMENT", `host ${target.hostName} named twice`);
        seen.add(target.hostName);
      }
      await deps.store.listHosts([...seen]);
      for (const path of new Set(request.targets.map((target) => target.storePath))) {
        const missing = await deps.cache.missingFromClosure(path);
        if (missing.length > 0) {
          const shown = missing.slice(0, 5).join(", ") + (missing.length > 5 ? ` and ${missing.length - 5} more` : "");
          throw new FerryError("E_PATH_NOT_IN_CACHE", `the cache lacks ${missing.length} path(s) of the closure of ${path}: ${shown}`);
        }
      }
      const mode = request.mode === ActivationMode.ACTIVATION_MODE_UNSPECIFIED ? ActivationMode.ACTIVATION_MODE_SWITCH : request.mode;
      const deploymentId = newDeploymentId(now());
      const records = await deps.store.recordDeployment(deploymentId, request.targets, mode, now());
      for (const record of records) {
        deps.log.info({ host: record.name, deploymentId, serial: record.desiredSerial, storePath: record.desiredSystem }, "desired system recorded");
        deps.hub.pushDesired(record);
        deps.hostEvents.emit("changed", record.name);
      }
      return { deploymentId, hosts: records.map((record) => toHostStatus(record, deps.hub.isOnline(record.name))) };
    }),

    watchHosts: (call: ServerWritableStream<WatchHostsRequest, WatchHostsResponse>): void => {
      let watched: Set<string> | undefined;
      const send = (hostName: string): void => {
        if (watched && watched.size > 0 && !watched.has(hostName)) return;
        void deps.store.getHost(hostName).then((record) => {
          if (record && !call.cancelled) call.write({ host: toHostStatus(record, deps.hub.isOnline(record.name)) });
        });
      };
      const stop = (): void => {
        deps.hostEvents.off("changed", send);
      };
      call.on("cancelled", stop);
      call.on("close", stop);
      Promise.resolve()
        .then(() => {
          authenticate(call);
          call.request.names.forEach(assertHostName);
          // Listen before taking the snapshot, so no change falls in between.
          watched = new Set(call.request.names);
          deps.hostEvents.on("changed", send);
          return statuses(call.request.names);
        })
        .then((initial) => {
          for (const host of initial) call.write({ host });
        })
        .catch((error: unknown) => {
          stop();
          call.destroy(toServiceError(error) as Error);
        });
    },
  };
}
