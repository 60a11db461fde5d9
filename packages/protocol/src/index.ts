// Re-exports the generated messages; regenerate with `npm run gen`, never edit gen/.
export { HostPhase, hostPhaseFromJSON, hostPhaseToJSON, ActivationMode, activationModeFromJSON, activationModeToJSON } from "./gen/ferry/v1/common.js";
export {
  AgentMessage,
  ControllerMessage,
  Hello,
  Welcome,
  Heartbeat,
  HeartbeatAck,
  DesiredSystem,
  Progress,
  ActivationResult,
  LogLine,
  DesiredSystemRequest,
  Refusal,
} from "./gen/ferry/v1/agent.js";
export {
  GetInfoRequest,
  GetInfoResponse,
  AddHostRequest,
  AddHostResponse,
  RemoveHostRequest,
  RemoveHostResponse,
  ListHostsRequest,
  ListHostsResponse,
  HostTarget,
  DeployRequest,
  DeployResponse,
  WatchHostsRequest,
  WatchHostsResponse,
  HostStatus,
  OperatorServiceService,
  OperatorServiceServer,
  OperatorServiceClient,
} from "./gen/ferry/v1/operator.js";
export * from "./frames.js";
