import { ANY_TOKEN, type Requirement } from "./authorize.js";

/**
 * What each gRPC method needs, by its name in the .proto files. Every handler
 * takes its name from this table, so a method cannot be served without an
 * entry; the table test (test/scopes.test.ts) checks every method of every
 * service against it.
 */
export const RPC_REQUIREMENTS = {
  // OperatorService
  GetInfo: ANY_TOKEN,
  AddHost: "hosts:admin",
  RemoveHost: "hosts:admin",
  ListHosts: "read",
  Deploy: "deploy",
  WatchHosts: "read",
  DryActivate: "deploy",
  StartRollout: "deploy",
  GetRollout: "read",
  ListRollouts: "read",
  ControlRollout: "deploy",
  AddMaintenanceWindow: "hosts:admin",
  ListMaintenanceWindows: "read",
  RemoveMaintenanceWindow: "hosts:admin",
  RemoveCachePaths: "admin",
  CollectCacheGarbage: "admin",
  ListHistory: "read",
  Rollback: "deploy",
  StreamLogs: "read",
  // SiteService
  PublishBundle: "bundles:import",
  Inventory: "read",
  // AccessService
  CreateToken: "admin",
  ListTokens: "admin",
  RevokeToken: "admin",
  RotateToken: "admin",
  RotateHostToken: "hosts:admin",
  ListAudit: "admin",
} as const satisfies Record<string, Requirement>;

export type RpcName = keyof typeof RPC_REQUIREMENTS;

/** The HTTP listener: cache reads are public (hosts substitute from it), uploads need a scope; /agent takes agent tokens only. */
export const HTTP_REQUIREMENTS = {
  "GET /cache/*": "public",
  "PUT /cache/*": "cache:push",
  "PUT /bundles/upload": "bundles:import",
  "GET /agent": "agent-token",
  "GET /healthz": "public",
  /** Public instead with --metrics-public (metrics/http-metrics.ts). */
  "GET /metrics": "read",
  /** The dashboard: a session cookie from a login with a read-scoped token (dashboard/session-gate.ts). */
  "GET /ui/*": "read",
  /** Pause, resume, abort, promote: deploy for the rollout's hosts and environment, as ControlRollout. */
  "POST /ui/rollouts/*/control": RPC_REQUIREMENTS.ControlRollout,
  /** The audit trail, as ListAudit. */
  "GET /ui/audit": RPC_REQUIREMENTS.ListAudit,
} as const satisfies Record<string, Requirement | "public" | "agent-token">;
