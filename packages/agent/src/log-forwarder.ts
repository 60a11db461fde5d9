import { Writable } from "node:stream";
import type { LogLine } from "@ferry/protocol/agent-channel";

const LEVELS: Record<number, string> = { 30: "info", 40: "warn", 50: "error", 60: "fatal" };
const MAX_MESSAGE = 4096;
const MAX_FIELD_TEXT = 4096;
const MAX_FIELDS_JSON = 16 * 1024;
/** pino's own keys, the ones a LogLine carries separately, and those the controller adds itself. */
const NOT_FIELDS = new Set(["level", "time", "msg", "pid", "hostname", "component", "host", "serial", "rolloutId"]);

/**
 * The event's other fields (why a host did what it did: failingBefore, the
 * checks' report, error codes), as bounded JSON: long texts are cut, and an
 * event too large even so keeps only the names of its fields.
 */
function fieldsJson(event: Record<string, unknown>): string {
  const fields = Object.fromEntries(Object.entries(event).filter(([key]) => !NOT_FIELDS.has(key)));
  if (Object.keys(fields).length === 0) return "";
  const text = JSON.stringify(fields, (_key, value: unknown) =>
    typeof value === "string" && value.length > MAX_FIELD_TEXT ? `[…]${value.slice(-MAX_FIELD_TEXT)}` : value,
  );
  return text.length <= MAX_FIELDS_JSON ? text : JSON.stringify({ fieldsDropped: Object.keys(fields).slice(0, 50) });
}

/**
 * Receives the agent's own log lines and sends the ones about a deployment
 * (those that carry a serial) to the controller, so an operator sees why a
 * host did what it did without logging in. Best effort: lines written while
 * the link is down are dropped; results, which matter, are kept on disk.
 */
export class LogForwarder extends Writable {
  private send: ((line: LogLine) => boolean) | undefined;
  private partial = "";

  attach(send: (line: LogLine) => boolean): void {
    this.send = send;
  }

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    const text = this.partial + chunk.toString();
    const lines = text.split("\n");
    this.partial = (lines.pop() ?? "").slice(-MAX_MESSAGE * 4);
    for (const line of lines) this.forward(line);
    done();
  }

  private forward(line: string): void {
    if (!this.send || !line.startsWith("{")) return;
    let event: Record<string, unknown>;
    try {
      event = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    if (typeof event["serial"] !== "number") return;
    this.send({
      hostName: "",
      atMs: Date.parse(String(event["time"])) || Date.now(),
      level: LEVELS[Number(event["level"])] ?? "info",
      message: String(event["msg"] ?? "").slice(0, MAX_MESSAGE),
      serial: event["serial"],
      rolloutId: typeof event["rolloutId"] === "string" ? event["rolloutId"] : "",
      fieldsJson: fieldsJson(event),
    });
  }
}
