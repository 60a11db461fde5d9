export { startController, type ControllerOptions, type RunningController } from "./controller.js";
export type { ControllerTlsFiles } from "./tls/controller-tls.js";
export { DEFAULT_EDGE_LIMITS, type EdgeLimits } from "./edge/connection-governor.js";
export { SqliteStateStore } from "./store/sqlite-store.js";
export type { StateStore, HostRecord, HostReport, DeploymentTarget } from "./store/state-store.js";
export { BinaryCache } from "./cache/binary-cache.js";
export { ERROR_CODE_TRAILER } from "./api/grpc-errors.js";
