import { formatPhase } from "@ferry/core";
import type { HostPhase } from "@ferry/protocol";
import { html, type SafeHtml } from "./html.js";

/** A UTC time to the second; "-" for 0 (never). */
export function when(ms: number): string {
  return ms > 0 ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) + "Z" : "-";
}

/** How long ago, coarsely, next to the exact time in a tooltip. */
export function ago(ms: number, nowMs: number): SafeHtml {
  if (ms <= 0) return html`<span class="muted">never</span>`;
  const seconds = Math.max(0, Math.round((nowMs - ms) / 1000));
  const text =
    seconds < 90
      ? `${seconds} s ago`
      : seconds < 5400
        ? `${Math.round(seconds / 60)} min ago`
        : seconds < 172_800
          ? `${Math.round(seconds / 3600)} h ago`
          : `${Math.round(seconds / 86_400)} d ago`;
  return html`<time datetime="${new Date(ms).toISOString()}" title="${when(ms)}">${text}</time>`;
}

/** /nix/store/hash-name as hash…-name: the full path in a tooltip. */
export function storePath(path: string): SafeHtml {
  if (path === "") return html`<span class="muted">-</span>`;
  const base = path.startsWith("/nix/store/") ? path.slice(11) : path;
  const short = base.length > 40 ? `${base.slice(0, 7)}…${base.slice(32)}` : base;
  return html`<code title="${path}">${short}</code>`;
}

const BAD_PHASES = new Set(["failed", "rolled-back", "rolling-back"]);
const GOOD_PHASES = new Set(["active"]);

export function phase(value: HostPhase): SafeHtml {
  const name = formatPhase(value);
  return html`<span class="${BAD_PHASES.has(name) ? "bad" : GOOD_PHASES.has(name) ? "good" : ""}">${name}</span>`;
}

const BAD_STATES = new Set(["failed", "rolled-back", "unfetchable", "aborted"]);
const GOOD_STATES = new Set(["confirmed", "completed", "prefetched"]);
const WAIT_STATES = new Set(["paused", "waiting-gate", "waiting-window"]);

/** A rollout's or a rollout host's state, coloured by what it means. */
export function state(value: string): SafeHtml {
  const tone = BAD_STATES.has(value) ? "bad" : GOOD_STATES.has(value) ? "good" : WAIT_STATES.has(value) ? "warn" : "";
  return html`<span class="${tone}" data-state="${value}">${value}</span>`;
}
