import { AgentMessage, ControllerMessage } from "./gen/ferry/v1/agent.js";

/** Version of the agent channel. Bumped only for incompatible changes. */
export const PROTOCOL_VERSION = 1;

/** Upper bound for one frame; results carry at most a few KiB of output. */
export const MAX_FRAME_BYTES = 1024 * 1024;

export type AgentBody = NonNullable<AgentMessage["body"]>;
export type ControllerBody = NonNullable<ControllerMessage["body"]>;

export class FrameError extends Error {
  constructor(
    readonly code: "E_MALFORMED_FRAME" | "E_FRAME_TOO_LARGE" | "E_PROTOCOL_VERSION",
    message: string,
  ) {
    super(message);
  }
}

export function encodeAgentFrame(body: AgentBody): Uint8Array {
  return AgentMessage.encode({ protocolVersion: PROTOCOL_VERSION, body }).finish();
}

export function encodeControllerFrame(body: ControllerBody): Uint8Array {
  return ControllerMessage.encode({ protocolVersion: PROTOCOL_VERSION, body }).finish();
}

function decodeFrame<T extends { protocolVersion: number; body?: unknown }>(
  bytes: Uint8Array,
  decode: (b: Uint8Array) => T,
): T & { body: NonNullable<T["body"]> } {
  if (bytes.length > MAX_FRAME_BYTES) throw new FrameError("E_FRAME_TOO_LARGE", `frame of ${bytes.length} bytes exceeds ${MAX_FRAME_BYTES}`);
  let message: T;
  try {
    message = decode(bytes);
  } catch (error) {
    throw new FrameError("E_MALFORMED_FRAME", `undecodable frame: ${(error as Error).message}`);
  }
  if (message.protocolVersion !== PROTOCOL_VERSION) {
    throw new FrameError("E_PROTOCOL_VERSION", `peer speaks protocol version ${message.protocolVersion}, this side speaks ${PROTOCOL_VERSION}`);
  }
  if (message.body === undefined || message.body === null) throw new FrameError("E_MALFORMED_FRAME", "frame has no body");
  return message as T & { body: NonNullable<T["body"]> };
}

export function decodeAgentFrame(bytes: Uint8Array): AgentMessage & { body: AgentBody } {
  return decodeFrame(bytes, (b) => AgentMessage.decode(b));
}

export function decodeControllerFrame(bytes: Uint8Array): ControllerMessage & { body: ControllerBody } {
  return decodeFrame(bytes, (b) => ControllerMessage.decode(b));
}
