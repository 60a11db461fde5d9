import type { ServerWritableStream } from "@grpc/grpc-js";
import { FerryError, assertHostName, assertStorePath, type Logger } from "@ferry/core";
import {
  ActivationMode,
  type HostLogLine,
  type ListHistoryRequest,
  type ListHistoryResponse,
  type RollbackRequest,
  type RollbackResponse,
  type StreamLogsRequest,
  type StreamLogsResponse,
} from "@ferry/protocol";
import type { AuditLog } from "../audit/audit-log.js";
import type { Authenticator } from "../auth/authenticate.js";
import { authorize } from "../auth/authorize.js";
import { deployTarget } from "../auth/deploy-target.js";
import type { DesiredState } from "../desired/desired-state.js";
import { hostHistory, serialsOf, type HistoryEntry } from "../history/deployment-history.js";
import { chooseRollback } from "../history/rollback-target.js";
import type { HostLogs } from "../hub/host-logs.js";
import { DESIRED_ASSIGNED } from "../store/history-events.js";
import type { StateStore } from "../store/state-store.js";
import { recordDeploy } from "./deploy.js";
import { toServiceError } from "./grpc-errors.js";
import { toHostStatus, type LinkView } from "./host-status.js";
import { admitRpc, unaryHandler } from "./unary.js";

export interface HistoryServiceDeps {
  store: StateStore;
  desired: DesiredState;
  hub: LinkView;
  logs: HostLogs;
  log: Logger;
  authenticator: Authenticator;
  audit: AuditLog;
  /** Events read per host: the retention's per-host count, so nothing kept is missed. */
  eventsPerHost: number;
  now?: () => number;
}

const MAX_HISTORY = 1000;
/** Lines a follower may have unsent before newer ones are dropped (and counted). */
const MAX_UNSENT_LINES = 1000;

/** ferry history, ferry rollback and ferry logs: the handlers of the operator service over each host's past. */
export function createHistoryHandlers(deps: HistoryServiceDeps) {
  const now = deps.now ?? Date.now;
  const unary = unaryHandler(deps.log, deps.authenticator);
  const historyOf = async (hostName: string): Promise<HistoryEntry[]> => hostHistory(await deps.store.listEvents(hostName, deps.eventsPerHost));

  return {
    listHistory: unary("ListHistory", async (request: ListHistoryRequest): Promise<ListHistoryResponse> => {
      const limit = Math.min(request.limit || 50, MAX_HISTORY);
      let entries: HistoryEntry[];
      if (request.hostName !== "") {
        const [host] = await deps.store.listHosts([request.hostName]);
        entries = await historyOf((host as { name: string }).name);
      } else {
        // The newest assignments over the fleet name the hosts worth reading.
        const names = new Set((await deps.store.listEventsOfKind(DESIRED_ASSIGNED, limit)).map((event) => event.hostName));
        entries = (await Promise.all([...names].map(historyOf))).flat().sort((a, b) => b.atMs - a.atMs || b.serial - a.serial);
      }
      return { entries: entries.slice(0, limit) };
    }),

    rollback: unary("Rollback", async (request: RollbackRequest, caller): Promise<RollbackResponse> => {
      if (request.hostNames.length === 0) throw new FerryError("E_BAD_ARGUMENT", "name at least one HOST");
      const to = request.toStorePath === "" ? undefined : request.toStorePath;
      if (to !== undefined && /^\d+$/.test(to)) {
        throw new FerryError("E_GENERATION_UNKNOWN", `the controller does not know the generation numbers of hosts; name a store path instead of ${to}`);
      }
      if (to !== undefined) assertStorePath(to);
      const hosts = await deps.store.listHosts(request.hostNames);
      authorize(
        caller,
        "deploy",
        await deployTarget(
          deps.store,
          hosts.map((host) => host.name),
        ),
      );
      const choices = [];
      for (const host of hosts) choices.push(chooseRollback(host, await historyOf(host.name), to));
      const { deploymentId, records } = await recordDeploy(
        deps.store,
        deps.desired,
        choices.map((choice) => ({ hostName: choice.hostName, storePath: choice.storePath })),
        {
          // Each host's own strategy, as for a deploy without --mode; no intent: a host that requires one refuses it.
          mode: ActivationMode.ACTIVATION_MODE_UNSPECIFIED,
          // Going back is what the operator wants now, not when a window opens.
          ignoreWindows: true,
          requestedBy: caller.name,
          closuresOnHosts: new Set(choices.filter((choice) => choice.onHost).map((choice) => choice.hostName)),
        },
        now(),
      );
      await deps.audit.record(caller.name, "rollback", deploymentId, {
        hosts: Object.fromEntries(choices.map((choice) => [choice.hostName, choice.storePath])),
        ...(to !== undefined ? { to } : {}),
      });
      deps.log.info({ deploymentId, hosts: choices.length, requestedBy: caller.name }, "rollback recorded");
      return {
        deploymentId,
        targets: choices.map(({ hostName, storePath, source }) => ({ hostName, storePath, source })),
        hosts: records.map((record) => toHostStatus(record, deps.hub)),
      };
    }),

    streamLogs: (call: ServerWritableStream<StreamLogsRequest, StreamLogsResponse>): void => {
      let stop = (): void => undefined;
      call.on("cancelled", () => stop());
      call.on("close", () => stop());
      admitRpc(deps.authenticator, call, "StreamLogs")
        .then(async () => {
          const [host] = await deps.store.listHosts([assertHostName(call.request.hostName)]);
          const hostName = (host as { name: string }).name;
          const id = call.request.deploymentId;
          const matches = id === "" ? () => true : serialsOf(await deps.store.listEvents(hostName, deps.eventsPerHost), id);
          const wanted = (line: HostLogLine): boolean => id === "" || line.rolloutId === id || matches(line.serial);
          const limit = Math.min(call.request.lines || 100, 100_000);
          let unsent = 0;
          let dropped = 0;
          const send = (line: HostLogLine): void => {
            if (call.cancelled) return;
            if (unsent >= MAX_UNSENT_LINES) {
              dropped++;
              return;
            }
            if (dropped > 0) {
              const note = { ...line, level: "warn", message: `${dropped} lines dropped: the client read too slowly`, fieldsJson: "" };
              dropped = 0;
              send(note);
            }
            unsent++;
            // write()'s callback runs once the message is handed to the transport.
            call.write({ line }, () => unsent--);
          };
          for (const line of deps.logs.lines(hostName).filter(wanted).slice(-limit)) send(line);
          // No await since the held lines were read: no line can fall in between.
          if (call.request.follow) stop = deps.logs.follow(hostName, (line) => wanted(line) && send(line));
          if (!call.request.follow) call.end();
        })
        .catch((error: unknown) => {
          stop();
          call.emit("error", toServiceError(error));
        });
    },
  };
}
