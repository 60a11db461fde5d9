import type { EventEmitter } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import ansiEscapes from "ansi-escapes";
import { createLogUpdate } from "log-update";
import { FerryError } from "@ferry/core";
import type { Rollout } from "@ferry/protocol";
import { changeLines, summaryLine } from "./rollout-log.js";
import { formatDuration, isFinished } from "./rollout-states.js";
import { renderRollout } from "./rollout-view.js";
import { stringWidth } from "./text-flow.js";
import { readEnv } from "./spec/env.js";

export interface WatchOptions {
  id: string;
  /** One look at the rollout; throws E_CONTROLLER_UNREACHABLE while the controller is away. */
  fetch: () => Promise<Rollout>;
  /** Where the view goes (stderr: stdout keeps the command's result). */
  stream: NodeJS.WriteStream;
  /** Redraw in place; otherwise plain lines, one per change. */
  live: boolean;
  timeoutMs: number;
  /** The exact command that watches this rollout again, told on Ctrl-C and on timeout. */
  watchCommand: string;
  pollMs?: number;
  now?: () => number;
  /** Where SIGINT comes from: the process, or a test's emitter. */
  signals?: EventEmitter;
}

export type WatchResult = { outcome: "finished"; rollout: Rollout } | { outcome: "interrupted"; rollout: Rollout | undefined };

/** The live view when the stream is a terminal that can take it and no one asked for JSON. */
export function canDrawLive(stream: NodeJS.WriteStream, json: boolean): boolean {
  return !json && stream.isTTY === true && readEnv("TERM") !== "dumb";
}

export function interruptedMessage(id: string, watchCommand: string): string {
  return [
    `Stopped watching. Rollout ${id} goes on on the controller.`,
    `  watch it again:  ${watchCommand}`,
    `  pause it:        ferry rollout pause ${id}`,
    `  abort it:        ferry rollout abort ${id}`,
    "",
  ].join("\n");
}

interface Sink {
  show(rollout: Rollout, notice: string): void;
  /** Ends the view; a second call does nothing. */
  close(): void;
}

/**
 * Follows a rollout until it finishes, Ctrl-C, or the timeout. Polling (not a
 * stream) is what lets the watch ride out a controller restart. Ctrl-C stops
 * only the watching: the rollout is the controller's and goes on.
 */
export async function watchRollout(options: WatchOptions): Promise<WatchResult> {
  const now = options.now ?? Date.now;
  const signals = options.signals ?? process;
  const deadline = now() + options.timeoutMs;
  const stop = new AbortController();
  const interrupt = () => stop.abort();
  signals.on("SIGINT", interrupt);
  const interrupted = new Promise<"interrupted">((resolve) => stop.signal.addEventListener("abort", () => resolve("interrupted"), { once: true }));
  const sink: Sink = options.live ? new LiveSink(options.stream, now) : new PlainSink(options.stream, now);
  let last: Rollout | undefined;
  let unreachableSince = 0;
  try {
    for (;;) {
      const look = await Promise.race([
        options.fetch().then(
          (rollout) => ({ rollout }),
          (error: unknown) => ({ error }),
        ),
        interrupted,
      ]);
      if (look === "interrupted") break;
      if ("error" in look) {
        if (!(look.error instanceof FerryError) || look.error.code !== "E_CONTROLLER_UNREACHABLE") throw look.error;
        if (!unreachableSince && !last) options.stream.write("controller unreachable; still trying\n");
        unreachableSince ||= now();
      } else {
        last = look.rollout;
        unreachableSince = 0;
      }
      const notice = unreachableSince ? `controller unreachable for ${formatDuration(now() - unreachableSince)}; still trying` : "";
      if (last) sink.show(last, notice);
      if (last && isFinished(last)) {
        sink.close();
        if (!options.live) options.stream.write(`${summaryLine(last)}\n`);
        return { outcome: "finished", rollout: last };
      }
      if (now() > deadline) {
        throw new FerryError(
          "E_DEPLOY_TIMEOUT",
          `rollout ${options.id} still ${last?.state ?? "unknown"} after ${formatDuration(options.timeoutMs)}; it goes on on the controller: watch it with ${options.watchCommand}`,
        );
      }
      const slept = await sleep(options.pollMs ?? 1000, "slept", { signal: stop.signal }).catch(() => "interrupted" as const);
      if (slept === "interrupted") break;
    }
    sink.close();
    options.stream.write(`${options.live ? "\n" : ""}${interruptedMessage(options.id, options.watchCommand)}`);
    return { outcome: "interrupted", rollout: last };
  } finally {
    // Also on errors: the cursor comes back and the resize handler goes.
    sink.close();
    signals.off("SIGINT", interrupt);
    stop.abort();
  }
}

/**
 * Redraws the view in place with log-update, sized to the terminal at every
 * draw. On a resize the terminal has already re-wrapped the old frame at the
 * new width (tmux and most emulators reflow), so the frame is erased by the
 * rows it takes now, not the rows it was drawn on; otherwise each narrowing
 * would leave old headers behind.
 */
class LiveSink implements Sink {
  private readonly update: ReturnType<typeof createLogUpdate>;
  private lines: string[] = [];
  private drawnWidth = 0;
  private rollout: Rollout | undefined;
  private notice = "";
  private closed = false;
  private readonly onResize = () => this.resized();

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly now: () => number,
  ) {
    this.update = createLogUpdate(stream);
    stream.on("resize", this.onResize);
  }

  private get width(): number {
    return this.stream.columns || 80;
  }

  show(rollout: Rollout, notice: string): void {
    this.rollout = rollout;
    this.notice = notice;
    this.draw();
  }

  private draw(): void {
    if (!this.rollout) return;
    const width = this.width;
    this.lines = renderRollout(this.rollout, {
      width,
      now: this.now(),
      // One row stays free for the cursor, below the frame.
      maxLines: Math.max(3, (this.stream.rows || 24) - 1),
      notice: this.notice,
      footer: ["Ctrl-C stops watching; the rollout goes on."],
    });
    this.drawnWidth = width;
    this.update(this.lines.join("\n"));
  }

  private resized(): void {
    const width = this.width;
    if (this.lines.length > 0 && width !== this.drawnWidth) {
      const rows = this.lines.reduce((sum, line) => sum + Math.max(1, Math.ceil(stringWidth(line) / width)), 0);
      this.stream.write(ansiEscapes.eraseLines(rows + 1));
      // Forget the erased frame so the next draw starts afresh where it stood.
      this.update.done();
    }
    this.draw();
  }

  /**
   * The last frame stays in the scrollback as the record of the watch, so it
   * is written whole: every wave and host, however tall, and no footer.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stream.off("resize", this.onResize);
    this.update.clear();
    if (this.rollout) this.stream.write(`${renderRollout(this.rollout, { width: this.width, now: this.now() }).join("\n")}\n`);
    this.update.done();
  }
}

class PlainSink implements Sink {
  private previous: Rollout | undefined;
  private lastNotice = "";

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly now: () => number,
  ) {}

  show(rollout: Rollout, notice: string): void {
    const lines = changeLines(this.previous, rollout, this.now());
    // The notice's own clock ticks every second; a log wants it once when it starts, once when it ends.
    const reachable = notice === "";
    if (!reachable && this.lastNotice === "") lines.push("controller unreachable; still trying");
    if (reachable && this.lastNotice !== "") lines.push("controller reachable again");
    this.lastNotice = notice;
    this.previous = rollout;
    if (lines.length > 0) this.stream.write(`${lines.join("\n")}\n`);
  }

  close(): void {}
}
