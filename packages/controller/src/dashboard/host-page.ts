import { formatMode } from "@ferry/core";
import type { HostLogLine } from "@ferry/protocol";
import type { LinkView } from "../api/host-status.js";
import type { HostEvent, HostRecord } from "../store/state-store.js";
import { ago, phase, storePath, when } from "./format.js";
import { html, segment, type SafeHtml } from "./html.js";

/** Events shown on a host's page, newest last. */
export const HOST_EVENTS_SHOWN = 30;

function event(entry: HostEvent): SafeHtml {
  const data = entry.data;
  const text = (key: string): string => (typeof data[key] === "string" ? (data[key] as string) : "");
  const failing = Array.isArray(data.checksFailingBeforeAndAfter) ? (data.checksFailingBeforeAndAfter as unknown[]).map(String).join(", ") : "";
  return html`<tr>
    <td>${when(entry.atMs)}</td>
    <td class="${entry.kind.includes("fail") ? "bad" : ""}">${entry.kind}</td>
    <td>${text("storePath") ? storePath(text("storePath")) : ""}</td>
    <td>
      ${text("errorCode") ? html`<strong>${text("errorCode")}</strong> ` : ""}${text("errorMessage")}${failing ? html` <span class="muted">still failing: ${failing}</span>` : ""}
    </td>
  </tr>`;
}

/** The newest forwarded agent lines a host page shows. */
const LOG_LINES_SHOWN = 50;

export function hostPage(host: HostRecord, events: readonly HostEvent[], link: LinkView, nowMs: number, logLines: readonly HostLogLine[] = []): SafeHtml {
  const online = link.isOnline(host.name);
  return html`<section id="live">
    <h1>${host.name}</h1>
    <dl>
      <dt>Link</dt>
      <dd class="${online ? "good" : "muted"}">
        ${online ? "online" : "offline"}, last seen ${ago(Math.max(host.lastSeenMs, link.lastSeenMs(host.name)), nowMs)}
      </dd>
      <dt>Phase</dt>
      <dd data-phase>${phase(host.phase)}${host.heldForWindow ? " (waits for its maintenance window)" : ""}</dd>
      <dt>Tags</dt>
      <dd>${host.tags.join(", ") || "-"}</dd>
      <dt>Current system</dt>
      <dd>${storePath(host.currentSystem)}</dd>
      <dt>Previous system</dt>
      <dd>${storePath(host.previousSystem)}</dd>
      <dt>Desired system</dt>
      <dd>${storePath(host.desiredSystem)} ${host.desiredActivate ? "" : html`<span class="muted">(fetch only)</span>`}</dd>
      <dt>Deployment</dt>
      <dd>${host.deploymentId || "-"} · serial ${host.desiredSerial}, applied ${host.appliedSerial} · mode ${formatMode(host.activationMode)}</dd>
      <dt>Rollout</dt>
      <dd>${host.rolloutId ? html`<a href="/ui/rollouts/${segment(host.rolloutId)}">${host.rolloutId}</a>` : "-"}</dd>
      <dt>Agent</dt>
      <dd>${host.agentVersion || "-"}</dd>
      <dt>Checks</dt>
      <dd>
        ${host.checksRun}
        ran${host.checksFailingBeforeAndAfter.length > 0 ? html`; failing before and after the switch: ${host.checksFailingBeforeAndAfter.join(", ")}` : ""}
      </dd>
    </dl>
    ${
      host.lastErrorCode
        ? html`<h2 class="bad">Last error: ${host.lastErrorCode}</h2>
            <p id="error-message">${host.lastErrorMessage}</p>
            ${host.lastErrorOutput ? html`<pre id="error-output">${host.lastErrorOutput}</pre>` : ""}`
        : ""
    }
    <h2>Last events</h2>
    ${
      events.length === 0
        ? html`<p class="muted">No events recorded.</p>`
        : html`<table>
            <thead>
              <tr>
                <th>At</th>
                <th>Event</th>
                <th>System</th>
                <th>Detail</th>
              </tr>
            </thead>
            <tbody>
              ${[...events].reverse().map(event)}
            </tbody>
          </table>`
    }
    <h2>Agent log</h2>
    ${
      logLines.length === 0
        ? html`<p class="muted">No lines forwarded since the controller started (ferry logs ${host.name} --follow).</p>`
        : html`<pre id="agent-log">
${logLines
              .slice(-LOG_LINES_SHOWN)
              .map((line) => `${new Date(line.atMs).toISOString()} ${line.level} ${line.serial ? `#${line.serial} ` : ""}${line.message}`)
              .join("\n")}</pre>`
    }
  </section>`;
}
