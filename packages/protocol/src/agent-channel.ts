// The agent channel alone (`@ferry/protocol/agent-channel`): its messages, the
// enums and intents they carry, and the frame codec; not the operator
// services, whose gRPC stubs would load @grpc/grpc-js into every agent.
export * from "./gen/ferry/v1/agent.js";
export { HostPhase, hostPhaseFromJSON, hostPhaseToJSON, ActivationMode, activationModeFromJSON, activationModeToJSON } from "./gen/ferry/v1/common.js";
export { SignedIntent } from "./gen/ferry/v1/intent.js";
export * from "./frames.js";
