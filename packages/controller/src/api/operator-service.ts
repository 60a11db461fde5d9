import type { ServerWritableStream } from "@grpc/grpc-js";
import { FERRY_VERSION, assertHostName, assertTag, checkRelayedIntent, generateToken, hashToken } from "@ferry/core";
import {
  PROTOCOL_VERSION,
  type AddHostRequest,
  type AddHostResponse,
  type DeployRequest,
  type DeployResponse,
  type DryActivateRequest,
  type DryActivateResponse,
  type GetInfoResponse,
  type HostTarget,
  type ListHostsRequest,
  type ListHostsResponse,
  type OperatorServiceServer,
  type RemoveHostRequest,
  type RemoveHostResponse,
  type WatchHostsRequest,
  type WatchHostsResponse,
} from "@ferry/protocol";
import { NO_LINK, toHostStatus } from "./host-status.js";
import { loadPageOfHosts, pageOfHosts } from "./host-pages.js";
import { recordDeploy } from "./deploy.js";
import { requireClosuresInCache } from "../desired/closures.js";
import { canonicalTargets, validateTargets } from "../desired/targets.js";
import { toServiceError } from "./grpc-errors.js";
import { admitRpc, unaryHandler } from "./unary.js";
import { authorize } from "../auth/authorize.js";
import { deployTarget } from "../auth/deploy-target.js";
import type { ApiDeps } from "./api-deps.js";
import type { ClosureSource } from "../cache/closure-source.js";

export interface OperatorServiceDeps extends ApiDeps {
  info: Omit<GetInfoResponse, "version" | "protocolVersion">;
  /** Where a dry activation checks its closure: `cache`, or the external cache of --cache-url. */
  closures: ClosureSource;
}

type RolloutMethods =
  "startRollout" | "getRollout" | "listRollouts" | "controlRollout" | "addMaintenanceWindow" | "listMaintenanceWindows" | "removeMaintenanceWindow";
/** Served by api/cache-service.ts. */
type CacheMethods = "removeCachePaths" | "collectCacheGarbage";

/** Operator gRPC handlers: every call authenticates, validates, then acts. */
export function createOperatorService(deps: OperatorServiceDeps): Omit<OperatorServiceServer, RolloutMethods | CacheMethods> {
  const now = deps.now ?? Date.now;

  const unary = unaryHandler(deps.log, deps.authenticator);

  async function statuses(given: readonly string[]) {
    const names = given.map(assertHostName);
    return (await deps.store.listHosts(names)).map((record) => toHostStatus(record, deps.hub));
  }

  return {
    getInfo: unary("GetInfo", async (): Promise<GetInfoResponse> => ({ version: FERRY_VERSION, protocolVersion: PROTOCOL_VERSION, ...deps.info })),

    addHost: unary("AddHost", async (request: AddHostRequest, caller): Promise<AddHostResponse> => {
      const name = assertHostName(request.name);
      const tags = request.tags.map(assertTag);
      const token = generateToken();
      const record = await deps.store.addHost(name, hashToken(token), tags, now());
      deps.log.info({ host: name, tags, token: caller.name }, "host added");
      await deps.audit.record(caller.name, "host.add", name, { tags });
      return { host: toHostStatus(record, NO_LINK), agentToken: token };
    }),

    removeHost: unary("RemoveHost", async (request: RemoveHostRequest, caller): Promise<RemoveHostResponse> => {
      const name = assertHostName(request.name);
      await deps.store.removeHost(name);
      deps.hub.disconnect(name, "host removed by operator");
      deps.hostEvents.emit("changed", name);
      deps.log.info({ host: name, token: caller.name }, "host removed");
      await deps.audit.record(caller.name, "host.remove", name);
      return {};
    }),

    listHosts: unary("ListHosts", async (request: ListHostsRequest): Promise<ListHostsResponse> => {
      const paged = request.pageSize > 0 || request.pageToken !== "";
      if (!paged || request.names.length > 0) return pageOfHosts(await statuses(request.names), request);
      const after = async (name: string, limit: number) => (await deps.store.listHostsAfter(name, limit)).map((record) => toHostStatus(record, deps.hub));
      return loadPageOfHosts(after, request);
    }),

    deploy: unary("Deploy", async (request: DeployRequest, caller): Promise<DeployResponse> => {
      // Unknown hosts are refused by the assignment; authorized here, they carry no tags, so a tag-limited token stops first.
      authorize(
        caller,
        "deploy",
        await deployTarget(
          deps.store,
          canonicalTargets(request.targets).map((target) => target.hostName),
        ),
      );
      const { deploymentId, records, held, windowsIgnored } = await recordDeploy(
        deps.store,
        deps.desired,
        request.targets,
        { mode: request.mode, ignoreWindows: request.ignoreWindows, allowUnsigned: request.allowUnsigned, requestedBy: caller.name },
        now(),
      );
      await deps.audit.record(caller.name, "deploy", deploymentId, {
        hosts: Object.fromEntries(request.targets.map((target) => [target.hostName, target.storePath])),
        mode: request.mode,
        ignoreWindows: request.ignoreWindows,
        allowUnsigned: request.allowUnsigned,
      });
      const heldNames = records.filter((record) => record.heldForWindow).map((record) => record.name);
      if (heldNames.length > 0) {
        deps.log.info({ deploymentId, held: heldNames.length, hostNames: heldNames.slice(0, 20) }, "held hosts activate when their maintenance window opens");
      }
      for (const hold of windowsIgnored)
        deps.log.warn({ host: hold.hostName, deploymentId }, "deploy activates outside the host's maintenance window (ignore windows)");
      return { deploymentId, hosts: records.map((record) => toHostStatus(record, deps.hub)), held, windowsIgnored };
    }),

    dryActivate: unary("DryActivate", async (request: DryActivateRequest, caller): Promise<DryActivateResponse> => {
      const [target] = (await validateTargets(deps.store, [{ hostName: request.hostName, storePath: request.storePath }])) as [HostTarget];
      authorize(caller, "deploy", await deployTarget(deps.store, [target.hostName]));
      if (request.intent) checkRelayedIntent(request.intent, { ...target, mode: "dry-activate" }, now());
      // A dry run switches nothing, and the host checks signatures itself.
      await requireClosuresInCache(deps.closures, [target.storePath], { allowUnsigned: true });
      const timeoutMs = Math.min(Math.max(request.timeoutMs || 600_000, 1000), 3_600_000);
      await deps.audit.record(caller.name, "dry-activate", target.hostName, { storePath: target.storePath });
      const outcome = await deps.hub.dryActivate(target.hostName, target.storePath, timeoutMs, request.intent);
      return { success: outcome.success, output: outcome.output, errorCode: outcome.errorCode, errorMessage: outcome.errorMessage };
    }),

    watchHosts: (call: ServerWritableStream<WatchHostsRequest, WatchHostsResponse>): void => {
      let watched: Set<string> | undefined;
      const send = (hostName: string): void => {
        if (watched && watched.size > 0 && !watched.has(hostName)) return;
        void deps.store.getHost(hostName).then((record) => {
          if (record && !call.cancelled) call.write({ host: toHostStatus(record, deps.hub) });
        });
      };
      const stop = (): void => {
        deps.hostEvents.off("changed", send);
      };
      call.on("cancelled", stop);
      call.on("close", stop);
      admitRpc(deps.authenticator, call, "WatchHosts")
        .then(() => {
          const names = call.request.names.map(assertHostName);
          // Listen before taking the snapshot, so no change falls in between.
          watched = new Set(names);
          deps.hostEvents.on("changed", send);
          return statuses(names);
        })
        .then((initial) => {
          for (const host of initial) call.write({ host });
        })
        .catch((error: unknown) => {
          stop();
          // grpc-js sends a stream's status from end(), which its "error" handler calls; destroy() would send none.
          call.emit("error", toServiceError(error));
        });
    },
  };
}
