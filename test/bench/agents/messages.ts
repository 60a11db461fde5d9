// The IPC messages between the agents bench and its simulated-agent worker
// processes. Events travel in batches of tuples: tens of thousands of agents
// report every few seconds.

export interface SimAgentSpec {
  index: number;
  name: string;
  token: string;
  /** This agent's controller when it is not the fleet's (`StartMessage.url`): replicas share a fleet. */
  url?: string;
}

export interface StartMessage {
  type: "start";
  /** ws://127.0.0.1:PORT/agent */
  url: string;
  agents: SimAgentSpec[];
  heartbeatMs: number;
  reconnectMaxDelayMs: number;
  /** First connections in flight at once in this worker; reconnects only follow their back-off. */
  connectConcurrency: number;
  /** Agents per loopback source address (127.2.x.y): a real fleet has an address per host, and one address has ~28,000 ports. */
  agentsPerAddress: number;
}

/** These agents drop their socket and reconnect with the real agent's jittered back-off. */
export interface DropMessage {
  type: "drop";
  indices: number[];
}

export interface StopMessage {
  type: "stop";
}

export type ToWorker = StartMessage | DropMessage | StopMessage;

/** [index, atMs, serial, activate 0|1, rolloutId, fresh 0|1]: fresh when newer than what the agent applied. */
export type DesiredTuple = [number, number, number, number, string, number];
/** [index, atMs, serial, phase] of a result sent. */
export type ResultTuple = [number, number, number, number];
/** [index, atMs] */
export type AtTuple = [number, number];
/** [atMs, rttMs] of one answered heartbeat. */
export type RttTuple = [number, number];
/** [index, code, fatal 0|1] of a refusal frame. */
export type RefusalTuple = [number, string, number];

export interface EventsMessage {
  type: "events";
  desired: DesiredTuple[];
  results: ResultTuple[];
  welcomed: AtTuple[];
  closed: AtTuple[];
  rtt: RttTuple[];
  refusals: RefusalTuple[];
}

export interface ReadyMessage {
  type: "ready";
}

export type FromWorker = EventsMessage | ReadyMessage;
