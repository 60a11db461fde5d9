import type { EventEmitter } from "node:events";
import type { Logger } from "@ferry/core";
import type { AuditLog } from "../audit/audit-log.js";
import type { Authenticator } from "../auth/authenticate.js";
import type { BinaryCache } from "../cache/binary-cache.js";
import type { DesiredState } from "../desired/desired-state.js";
import type { AgentHub } from "../hub/agent-hub.js";
import type { StateStore } from "../store/state-store.js";

/** What every operator-facing service of the controller works with. */
export interface ApiDeps {
  store: StateStore;
  hub: AgentHub;
  cache: BinaryCache;
  /** The one path that gives hosts a new desired system. */
  desired: DesiredState;
  log: Logger;
  authenticator: Authenticator;
  audit: AuditLog;
  /** Emits "changed" with a host name whenever a host's status may have changed. */
  hostEvents: EventEmitter;
  now?: () => number;
}
