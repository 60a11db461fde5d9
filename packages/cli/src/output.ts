import { FerryError, explainSystemError, toFerryError } from "@ferry/core";
import { HostPhase, type HostStatus } from "@ferry/protocol";

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

export function phaseName(phase: HostPhase): string {
  return (HostPhase[phase] ?? "UNKNOWN")
    .replace(/^HOST_PHASE_/, "")
    .toLowerCase()
    .replace("_", "-");
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

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((header, i) => Math.max(header.length, ...rows.map((row) => (row[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n") + "\n";
}

export function hostStatusJson(host: HostStatus): Record<string, unknown> {
  return {
    name: host.name,
    tags: host.tags,
    online: host.online,
    phase: phaseName(host.phase),
    currentSystem: host.currentSystem,
    desiredSystem: host.desiredSystem,
    desiredSerial: host.desiredSerial,
    appliedSerial: host.appliedSerial,
    deploymentId: host.deploymentId,
    lastSeenMs: host.lastSeenMs,
    lastError: host.lastErrorCode ? { code: host.lastErrorCode, message: host.lastErrorMessage, output: host.lastErrorOutput } : null,
    agentVersion: host.agentVersion,
  };
}

export { FerryError };
