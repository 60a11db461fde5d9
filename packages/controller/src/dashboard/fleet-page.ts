import type { HostRecord } from "../store/state-store.js";
import type { LinkView } from "../api/host-status.js";
import { ago, phase, storePath } from "./format.js";
import { html, segment, type SafeHtml } from "./html.js";

/** Hosts per fleet page: a 50,000-host fleet is read a page at a time, in name order. */
export const FLEET_PAGE_SIZE = 100;

export interface FleetView {
  hosts: readonly HostRecord[];
  /** The name the page starts after ("" for the first page). */
  after: string;
  /** The last name of this page when more follow; "" otherwise. */
  next: string;
  link: LinkView;
  nowMs: number;
}

function row(host: HostRecord, link: LinkView, nowMs: number): SafeHtml {
  const online = link.isOnline(host.name);
  const lastSeen = Math.max(host.lastSeenMs, link.lastSeenMs(host.name));
  const pending = host.desiredSystem !== "" && host.desiredSystem !== host.currentSystem;
  return html`<tr data-host="${host.name}">
    <td><a href="/ui/hosts/${segment(host.name)}">${host.name}</a>${host.tags.length > 0 ? html` <span class="muted">${host.tags.join(", ")}</span>` : ""}</td>
    <td class="${online ? "good" : "muted"}">${online ? "online" : "offline"}</td>
    <td data-phase>${phase(host.phase)}</td>
    <td>${storePath(host.currentSystem)}</td>
    <td class="${pending ? "warn" : ""}">${storePath(host.desiredSystem)}</td>
    <td>${host.agentVersion || html`<span class="muted">-</span>`}</td>
    <td>${ago(lastSeen, nowMs)}</td>
    <td>${host.lastErrorCode ? html`<span class="bad">${host.lastErrorCode}</span> ` : ""}${host.checksFailingBeforeAndAfter.join(", ")}</td>
  </tr>`;
}

export function fleetPage(view: FleetView): SafeHtml {
  return html`<section id="live">
    <h1>Fleet</h1>
    ${
      view.hosts.length === 0
        ? html`<p class="muted">${view.after ? "No hosts after this one." : "No hosts yet: add one with ferry host add NAME."}</p>`
        : html`<table>
            <thead>
              <tr>
                <th>Host</th>
                <th>Link</th>
                <th>Phase</th>
                <th>Current system</th>
                <th>Desired system</th>
                <th>Agent</th>
                <th>Last seen</th>
                <th>Failing</th>
              </tr>
            </thead>
            <tbody>
              ${view.hosts.map((host) => row(host, view.link, view.nowMs))}
            </tbody>
          </table>`
    }
    <p>
      ${view.after ? html`<a href="/ui/">First page</a> ` : ""}${view.next ? html`<a href="/ui/?after=${segment(view.next)}" rel="next">Next ${FLEET_PAGE_SIZE} hosts</a>` : ""}
    </p>
  </section>`;
}
