import { pino, destination, stdTimeFunctions, type Logger } from "pino";

export type { Logger } from "pino";

/**
 * One JSON event per line on stdout, or stderr for CLI verbs whose stdout is
 * their result. Fields such as host and rollout ids are bound with child().
 */
export function createLogger(component: string, options: { level?: string; destination?: 1 | 2 } = {}): Logger {
  const level = options.level ?? process.env["FERRY_LOG_LEVEL"] ?? "info";
  return pino({ level, base: { component }, timestamp: stdTimeFunctions.isoTime }, destination({ fd: options.destination ?? 1, sync: true }));
}

export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
