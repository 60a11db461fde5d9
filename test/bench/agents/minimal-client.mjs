// The baseline of the agents bench's real-agent footprint: the least a Node
// process needs to hold an agent link — ws, the protobuf frames (not the rest
// of @ferry/protocol, which pulls in gRPC), a hello and a heartbeat per
// interval. Plain JavaScript, so no TypeScript loader inflates its memory.
// Usage: node minimal-client.mjs URL HOST TOKEN_FILE HEARTBEAT_MS
import { readFileSync } from "node:fs";
import WebSocket from "ws";
import { decodeControllerFrame, encodeAgentFrame } from "../../../packages/protocol/dist/frames.js";

const [url, hostName, tokenFile, heartbeatMs] = process.argv.slice(2);
const token = readFileSync(tokenFile, "utf8").trim();
let sequence = 0;

function connect() {
  const socket = new WebSocket(url, { perMessageDeflate: false });
  let timer;
  socket.on("open", () => {
    const hello = { hostName, token, currentSystem: "", agentVersion: "bench-minimal", appliedSerial: 0, phase: 0 };
    socket.send(encodeAgentFrame({ $case: "hello", value: hello }));
  });
  socket.on("message", (data) => {
    if (decodeControllerFrame(data).body.$case !== "welcome") return;
    timer = setInterval(() => {
      const heartbeat = { sequence: ++sequence, sentAtMs: Date.now(), currentSystem: "", phase: 0 };
      socket.send(encodeAgentFrame({ $case: "heartbeat", value: heartbeat }));
    }, Number(heartbeatMs));
  });
  socket.on("error", () => undefined);
  socket.on("close", () => {
    clearInterval(timer);
    setTimeout(connect, 1000);
  });
}
connect();
