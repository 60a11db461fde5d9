import ansiEscapes from "ansi-escapes";
import { canDrawLive } from "./rollout-watch.js";

const MIB = 1024 * 1024;
/** A terminal redraws at most this often: faster only costs CPU and flicker. */
const REDRAW_MS = 100;
/** Logs get a line this often at most: enough to see a job move, few enough to read. */
const PLAIN_MS = 5000;
/** The rate is measured over this last stretch, so a stall shows within seconds. */
const RATE_WINDOW_MS = 10_000;
/** Redraws with no news still move the rate and ETA on (a big path uploads in one piece). */
const TICK_MS = 1000;
/** The rate's samples are taken this often at most, however often updates come. */
const SAMPLE_MS = 250;
const BAR_MIN = 6;
const BAR_MAX = 40;

/** Where the progress goes: stderr, or a test's fake terminal. */
export interface ProgressStream {
  write(chunk: string): boolean;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  /** What is under way, e.g. "uploading"; first to go on a narrow terminal. */
  label: string;
  /** What the job moves in all; absent when not known (the bar then shows no share). */
  totalBytes?: number;
  totalItems?: number;
  /** What the items are, e.g. "paths". */
  itemNoun?: string;
  /** --json: nothing at all, scripts read stdout. */
  json: boolean;
  stream?: ProgressStream;
  now?: () => number;
  /** Starts a repeating timer and returns its stop; tests drive it by hand. */
  every?: (ms: number, tick: () => void) => () => void;
}

export interface Progress {
  /** Counts done so far (absolute, not increments), and the totals when they become known only now. */
  update(done: { bytes?: number; items?: number; totalBytes?: number; totalItems?: number }): void;
  /** Adds to the counts done so far. */
  add(bytes: number, items?: number): void;
  /** Clears the bar line; the command then prints its result. A second call does nothing. */
  finish(): void;
}

interface Sample {
  at: number;
  bytes: number;
  items: number;
}

function defaultEvery(ms: number, tick: () => void): () => void {
  const timer = setInterval(tick, ms);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * A progress reporter for long CLI work: on a terminal one line, redrawn in
 * place at most 10 times a second and cut to the terminal's width at each
 * draw (as the rollout view is); in a log a plain line every 5 s; with --json
 * nothing. It writes to stderr only: stdout keeps the command's result.
 */
export function createProgress(options: ProgressOptions): Progress {
  const stream = options.stream ?? process.stderr;
  if (options.json) return { update() {}, add() {}, finish() {} };
  const live = canDrawLive(stream as NodeJS.WriteStream, false);
  return new Reporter(options, stream, live);
}

class Reporter implements Progress {
  private readonly now: () => number;
  private readonly started: number;
  private bytes = 0;
  private items = 0;
  private totalBytes: number | undefined;
  private totalItems: number | undefined;
  private samples: Sample[] = [];
  private lastDraw = Number.NEGATIVE_INFINITY;
  private lastPlain: number;
  /** Length of the line on screen; 0 when none. */
  private drawn = 0;
  private finished = false;
  private readonly stopTicking: () => void;

  constructor(
    private readonly options: ProgressOptions,
    private readonly stream: ProgressStream,
    private readonly live: boolean,
  ) {
    this.now = options.now ?? Date.now;
    this.totalBytes = options.totalBytes;
    this.totalItems = options.totalItems;
    this.started = this.now();
    this.lastPlain = this.started;
    this.samples.push({ at: this.started, bytes: 0, items: 0 });
    const every = options.every ?? defaultEvery;
    this.stopTicking = live ? every(TICK_MS, () => this.show(true)) : () => {};
  }

  update(done: { bytes?: number; items?: number; totalBytes?: number; totalItems?: number }): void {
    if (done.totalBytes !== undefined) this.totalBytes = done.totalBytes;
    if (done.totalItems !== undefined) this.totalItems = done.totalItems;
    if (done.bytes !== undefined) this.bytes = done.bytes;
    if (done.items !== undefined) this.items = done.items;
    this.record();
    this.show(false);
  }

  add(bytes: number, items = 0): void {
    this.update({ bytes: this.bytes + bytes, items: this.items + items });
  }

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.stopTicking();
    if (this.live && this.drawn > 0) this.stream.write(this.erase());
    this.drawn = 0;
  }

  private record(): void {
    const at = this.now();
    // Callers may report every chunk; a sample a quarter second is plenty for the rate.
    if (at - (this.samples.at(-1) as Sample).at < SAMPLE_MS) return;
    this.samples.push({ at, bytes: this.bytes, items: this.items });
    // Keep one sample older than the window, so the rate spans all of it.
    while (this.samples.length > 2 && (this.samples[1] as Sample).at <= at - RATE_WINDOW_MS) this.samples.shift();
  }

  private show(tick: boolean): void {
    // Ticks only keep a line moving: none appears before the first news.
    if (this.finished || (tick && this.drawn === 0)) return;
    const at = this.now();
    if (this.live) {
      if (!tick && at - this.lastDraw < REDRAW_MS) return;
      this.lastDraw = at;
      const width = Math.max(1, (this.stream.columns || 80) - 1);
      const line = renderLine(this.snapshot(at), width);
      this.stream.write(`${this.erase()}${line}`);
      this.drawn = line.length;
    } else if (at - this.lastPlain >= PLAIN_MS) {
      this.lastPlain = at;
      this.stream.write(`${plainLine(this.snapshot(at))}\n`);
    }
  }

  /** Back to the start of the bar line, erasing it; a narrowed terminal may have wrapped it onto more rows. */
  private erase(): string {
    if (this.drawn === 0) return "\r";
    const width = this.stream.columns || 80;
    return `\r${ansiEscapes.eraseLines(Math.max(1, Math.ceil(this.drawn / width)))}`;
  }

  private snapshot(at: number): Snapshot {
    const first = this.samples[0] as Sample;
    const seconds = (at - first.at) / 1000;
    return {
      label: this.options.label,
      bytes: this.bytes,
      items: this.items,
      totalBytes: this.totalBytes,
      totalItems: this.totalItems,
      itemNoun: this.options.itemNoun ?? "items",
      bytesPerSecond: seconds > 0 ? (this.bytes - first.bytes) / seconds : undefined,
      itemsPerSecond: seconds > 0 ? (this.items - first.items) / seconds : undefined,
    };
  }
}

export interface Snapshot {
  label: string;
  bytes: number;
  items: number;
  totalBytes: number | undefined;
  totalItems: number | undefined;
  itemNoun: string;
  bytesPerSecond: number | undefined;
  itemsPerSecond: number | undefined;
}

/** The share done, 0 to 1, by bytes when their total is known, else by items; undefined when neither total is. */
export function fraction(s: Snapshot): number | undefined {
  if (s.totalBytes !== undefined) return s.totalBytes === 0 ? 1 : Math.min(1, s.bytes / s.totalBytes);
  if (s.totalItems !== undefined) return s.totalItems === 0 ? 1 : Math.min(1, s.items / s.totalItems);
  return undefined;
}

/** Seconds left at the current rate, by bytes when their total is known; undefined while the rate is nil or nothing says how much is left. */
export function etaSeconds(s: Snapshot): number | undefined {
  const left = (done: number, total: number | undefined, rate: number | undefined) =>
    total === undefined || rate === undefined || rate <= 0 ? undefined : Math.max(0, total - done) / rate;
  return s.totalBytes !== undefined ? left(s.bytes, s.totalBytes, s.bytesPerSecond) : left(s.items, s.totalItems, s.itemsPerSecond);
}

export function formatEta(seconds: number): string {
  const whole = Math.ceil(seconds);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const sec = String(whole % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

function mib(bytes: number): string {
  return (bytes / MIB).toFixed(1);
}

/** The pieces of a line, each absent when there is nothing to say. */
function fields(s: Snapshot): { percent?: string; bytes?: string; items?: string; rate?: string; eta?: string } {
  const share = fraction(s);
  const eta = etaSeconds(s);
  const showBytes = s.totalBytes !== undefined || s.bytes > 0;
  return {
    ...(share === undefined ? {} : { percent: `${Math.floor(share * 100)}%` }),
    ...(showBytes ? { bytes: s.totalBytes === undefined ? `${mib(s.bytes)} MiB` : `${mib(s.bytes)}/${mib(s.totalBytes)} MiB` } : {}),
    ...(s.totalItems !== undefined || s.items > 0 ? { items: `${s.items}${s.totalItems === undefined ? "" : `/${s.totalItems}`} ${s.itemNoun}` } : {}),
    ...(showBytes && s.bytesPerSecond !== undefined ? { rate: `${mib(s.bytesPerSecond)} MiB/s` } : {}),
    ...(eta === undefined ? {} : { eta: `ETA ${formatEta(eta)}` }),
  };
}

function bar(share: number, width: number): string {
  const inner = width - 2;
  const full = Math.floor(share * inner);
  return `[${"#".repeat(full)}${".".repeat(inner - full)}]`;
}

/**
 * The terminal line, never longer than `width`: the bar takes what the text
 * leaves (BAR_MIN to BAR_MAX), and on a narrow terminal the rate, the item
 * count, the label, the ETA and then the bar give way, in that order.
 */
export function renderLine(s: Snapshot, width: number): string {
  const f = fields(s);
  const share = fraction(s);
  let parts: { key: string; text: string }[] = [
    { key: "label", text: s.label },
    { key: "bar", text: "" },
    { key: "percent", text: f.percent ?? "" },
    { key: "bytes", text: f.bytes ?? "" },
    { key: "items", text: f.items ?? "" },
    { key: "rate", text: f.rate ?? "" },
    { key: "eta", text: f.eta ?? "" },
  ].filter((part) => (part.key === "bar" ? share !== undefined : part.text !== ""));
  const textWidth = () => parts.reduce((sum, part) => sum + (part.key === "bar" ? 0 : part.text.length), 0) + parts.length - 1;
  const hasBar = () => parts.some((part) => part.key === "bar");
  for (const key of ["rate", "items", "label", "eta", "bar"]) {
    if (textWidth() + (hasBar() ? BAR_MIN : 0) <= width) break;
    parts = parts.filter((part) => part.key !== key);
  }
  const barWidth = Math.min(BAR_MAX, width - textWidth());
  const line = parts.map((part) => (part.key === "bar" ? bar(share ?? 0, barWidth) : part.text)).join(" ");
  return line.length <= width ? line : `${line.slice(0, Math.max(0, width - 1))}…`;
}

/** The line a log gets: everything, no bar. */
export function plainLine(s: Snapshot): string {
  const f = fields(s);
  const counts = [f.items, f.bytes].filter(Boolean).join(", ");
  return `${s.label}: ${counts}${f.percent ? ` (${f.percent})` : ""}${f.rate ? `, ${f.rate}` : ""}${f.eta ? `, ${f.eta}` : ""}`;
}

/** Passes `source` on, telling `onBytes` of each chunk as it goes by. */
export async function* counted(source: AsyncIterable<Buffer>, onBytes: ((bytes: number) => void) | undefined): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    onBytes?.(chunk.length);
    yield chunk;
  }
}
