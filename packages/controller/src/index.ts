export { startController, type ControllerOptions, type RunningController } from "./controller.js";
export { SqliteStateStore } from "./store/sqlite-store.js";
export type { StateStore, HostRecord, HostReport, DeploymentTarget } from "./store/state-store.js";
export { BinaryCache } from "./cache/binary-cache.js";
export { DEFAULT_POLICY } from "./rollouts/plan.js";
export { ERROR_CODE_TRAILER } from "./api/grpc-errors.js";
