export { startAgent, type RunningAgent } from "./agent.js";
export {
  loadAgentConfig,
  parseAgentConfig,
  requireControllerSettings,
  CONTROLLER_KEYS,
  AGENT_CONFIG_SCHEMA,
  type AgentConfig,
  type ConnectedAgentConfig,
  type HealthCheck,
  type Strategy,
} from "./config.js";
export { compileAgentConfig, type AgentSettings } from "./settings.js";
export { StateFile, type AgentState, type Transaction } from "./state-file.js";
export { ActivationTransaction, type Desired, type TransactionDeps } from "./transaction.js";
export { RESTART_EXIT_STATUS } from "./self-restart.js";
export { collectGarbage } from "./garbage-collection.js";
export { applyBundle, HOST_LEDGER_FILE, type ApplyBundleOptions, type ApplyBundleReport } from "./apply-bundle.js";
export { LogForwarder } from "./log-forwarder.js";
export { assertChecksRunnable } from "./check-validation.js";
