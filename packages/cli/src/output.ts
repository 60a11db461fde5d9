import { FerryError, explainSystemError, formatMode, formatPhase, toFerryError } from "@ferry/core";
import type { HostStatus } from "@ferry/protocol";

export interface Output {
  json: boolean;
  /** The command's result: JSON on stdout with --json, else `human()` text. */
  result(data: unknown, human: () => string): void;
  /** Progress for people; silent with --json so stdout stays parseable. */
  note(line: string): void;
}

export function createOutput(json: boolean): Output {
  return {
    json,
    result(data, human) {
      process.stdout.write(json ? `${JSON.stringify(data, null, 2)}\n` : ensureNewline(human()));
    },
    note(line) {
      if (!json) process.stderr.write(`${line}\n`);
    },
  };
}

function ensureNewline(text: string): string {
  return text === "" || text.endsWith("\n") ? text : `${text}\n`;
}

/**
 * `--wait` finished without a failure, but not every host runs the new system
 * (a rollout skipped some; a deploy waits for a maintenance window).
 */
export const EXIT_NOT_EVERY_HOST = 3;

/** Prints `error E_CODE: message` and its hint, or the same as JSON; returns the exit code. */
export function reportError(error: unknown, json: boolean): number {
  // A missing file or module that escaped as a plain Node error still gets its code, not "this is a bug".
  const ferry: FerryError = explainSystemError(error) ?? toFerryError(error);
  if (json) {
    process.stdout.write(
      `${JSON.stringify({ error: { code: ferry.code, message: ferry.message, hint: ferry.hint, output: ferry.output || undefined } }, null, 2)}\n`,
    );
  } else {
    process.stderr.write(`error ${ferry.code}: ${ferry.message}\n  hint: ${ferry.hint}\n`);
    if (ferry.output) process.stderr.write(`  output:\n${indent(ferry.output.slice(-4000))}\n`);
  }
  return ferry.code === "E_BAD_ARGUMENT" ? 2 : 1;
}

function indent(text: string): string {
  return text
    .trimEnd()
    .split("\n")
    .map((line) => `    ${line}`)
    .join("\n");
}

/** `/nix/store/abc…-name` shortened for tables; JSON output keeps full paths. */
export function shortPath(path: string): string {
  if (path === "") return "-";
  const base = path.slice("/nix/store/".length);
  return `${base.slice(0, 8)}…${base.slice(32)}`;
}

export function ago(ms: number, now = Date.now()): string {
  if (ms === 0) return "never";
  const seconds = Math.max(0, Math.round((now - ms) / 1000));
  if (seconds < 120) return `${seconds}s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m ago`;
  return `${Math.round(seconds / 3600)}h ago`;
}

export interface TableFit {
  /** Columns that may be cut short (with "…") to fit, widest first. */
  elastic?: readonly number[];
  /** Columns left out, in this order, when cutting is not enough. */
  optional?: readonly number[];
  /** Never cut below this many characters, per column: a host name cut to "web-l…" names nothing. */
  least?: Readonly<Record<number, number>>;
}

/** The terminal's width when stdout is one; pipes and files get whole tables. */
export function terminalWidth(): number | undefined {
  return process.stdout.isTTY ? process.stdout.columns : undefined;
}

function cut(cell: string, width: number): string {
  return cell.length <= width ? cell : `${cell.slice(0, Math.max(0, width - 1))}…`;
}

/**
 * Columns aligned with two spaces between them. Given a width (a terminal's),
 * the table fits it the way systemctl's do: elastic columns are cut short
 * first (never below their header), then optional columns are left out;
 * --json and pipes keep everything.
 */
export function table(headers: string[], rows: string[][], width?: number, fit: TableFit = {}): string {
  const natural = headers.map((header, i) => Math.max(header.length, ...rows.map((row) => (row[i] ?? "").length)));
  let columns = headers.map((_, i) => i);
  let widths = [...natural];
  if (width !== undefined) {
    const elastic = fit.elastic ?? [];
    const optional = fit.optional ?? [];
    // Leave out as few columns as lets the cut ones keep something readable (16 characters);
    // when even leaving out all of them is not enough, cut down to the headers.
    let fitted = false;
    for (const floor of [16, 6]) {
      for (let dropped = 0; dropped <= optional.length; dropped++) {
        const kept = columns.filter((i) => !optional.slice(0, dropped).includes(i));
        const cutTo = shrink(natural, kept, elastic, headers, width, floor, fit.least ?? {});
        const total = kept.reduce((sum, i) => sum + (cutTo[i] ?? 0), 0) + 2 * (kept.length - 1);
        if (total <= width || (floor === 6 && dropped === optional.length)) {
          columns = kept;
          widths = cutTo;
          fitted = true;
          break;
        }
      }
      if (fitted) break;
    }
  }
  const line = (cells: string[]) =>
    columns
      .map((i) => cut(cells[i] ?? "", widths[i] ?? 0).padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n") + "\n";
}

/** Widths with the elastic columns among `kept` cut, widest first, to no less than `floor` (or their header). */
function shrink(
  natural: readonly number[],
  kept: readonly number[],
  elastic: readonly number[],
  headers: readonly string[],
  width: number,
  floor: number,
  least: Readonly<Record<number, number>>,
): number[] {
  const widths = [...natural];
  const total = () => kept.reduce((sum, i) => sum + (widths[i] ?? 0), 0) + 2 * (kept.length - 1);
  for (const i of elastic.filter((i) => kept.includes(i)).sort((a, b) => (natural[b] ?? 0) - (natural[a] ?? 0))) {
    const over = total() - width;
    if (over <= 0) break;
    const lowest = Math.min(natural[i] ?? 0, Math.max((headers[i] ?? "").length, floor, least[i] ?? 0));
    widths[i] = Math.max(lowest, (widths[i] ?? 0) - over);
  }
  return widths;
}

export function hostStatusJson(host: HostStatus): Record<string, unknown> {
  return {
    name: host.name,
    tags: host.tags,
    online: host.online,
    phase: formatPhase(host.phase),
    mode: formatMode(host.mode),
    heldForWindow: host.heldForWindow,
    currentSystem: host.currentSystem,
    desiredSystem: host.desiredSystem,
    desiredSerial: host.desiredSerial,
    appliedSerial: host.appliedSerial,
    deploymentId: host.deploymentId,
    lastSeenMs: host.lastSeenMs,
    lastError: host.lastErrorCode ? { code: host.lastErrorCode, message: host.lastErrorMessage, output: host.lastErrorOutput } : null,
    agentVersion: host.agentVersion,
    healthChecks: { run: host.checksRun, failingBeforeAndAfter: host.checksFailingBeforeAndAfter },
  };
}

/** The CHECKS cell: how the last confirmation's checks judged the host's system. */
export function checksCell(host: HostStatus): string {
  const failing = host.checksFailingBeforeAndAfter.length;
  if (host.checksRun === 0) return "-";
  return failing === 0 ? `${host.checksRun} ok` : `${failing}/${host.checksRun} failing before+after`;
}

/** One line per host whose checks failed before and after its last switch, naming them. */
export function failingChecksNotes(hosts: readonly HostStatus[]): string[] {
  return hosts
    .filter((host) => host.checksFailingBeforeAndAfter.length > 0)
    .map((host) => `${host.name}: checks failing before and after the switch (not counted): ${host.checksFailingBeforeAndAfter.join(", ")}`);
}

export { FerryError };
