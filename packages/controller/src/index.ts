export { startController, type ControllerOptions, type RunningController } from "./controller.js";
export { DEFAULT_EDGE_LIMITS, type EdgeLimits } from "./edge/connection-governor.js";
export { SqliteStateStore } from "./store/sqlite-store.js";
export type { StateStore, HostRecord, HostReport, DeploymentTarget } from "./store/state-store.js";
export { BinaryCache } from "./cache/binary-cache.js";
export { DEFAULT_POLICY } from "./rollouts/plan.js";
export { ERROR_CODE_TRAILER } from "./api/grpc-errors.js";
export { DEFAULT_FRAME_RATE, type FrameRate } from "./hub/agent-limits.js";
export { DEFAULT_HISTORY_RETENTION, type HistoryRetention } from "./store/state-store.js";
