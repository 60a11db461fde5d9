import type { Writable } from "node:stream";
import { createRequire } from "node:module";
import type * as Pino from "pino";
import type { Level, Logger } from "pino";

// Loaded with require, not import, as ws is in the agent: pino alone peaks at 48 MiB imported against 43 MiB required, and the idle agent at 79.1 against 77.8 MiB.
const { pino, destination, multistream, stdTimeFunctions } = createRequire(import.meta.url)("pino") as typeof Pino;

export type { Logger } from "pino";

/** The level when neither the caller nor FERRY_LOG_LEVEL names one. */
export const DEFAULT_LOG_LEVEL = "info";

/**
 * One JSON event per line on stdout, or stderr for CLI verbs whose stdout is
 * their result. Fields such as host and rollout ids are bound with child().
 */
export function createLogger(component: string, options: { level?: string; destination?: 1 | 2; also?: Writable } = {}): Logger {
  const level = options.level ?? process.env["FERRY_LOG_LEVEL"] ?? DEFAULT_LOG_LEVEL;
  const main = destination({ fd: options.destination ?? 1, sync: true });
  // `also` receives the same lines from info up, e.g. to forward them to the controller.
  const stream = options.also
    ? multistream([
        { level: level as Level, stream: main },
        { level: "info", stream: options.also },
      ])
    : main;
  return pino({ level, base: { component }, timestamp: stdTimeFunctions.isoTime }, stream);
}

export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
