import type { AuditEntry } from "../store/access-records.js";
import { when } from "./format.js";
import { html, type SafeHtml } from "./html.js";

/** Entries on the audit page, newest first. */
export const AUDIT_SHOWN = 200;

export function auditPage(entries: readonly AuditEntry[]): SafeHtml {
  return html`<section id="live">
    <h1>Audit</h1>
    <table>
      <thead>
        <tr>
          <th>At</th>
          <th>Token</th>
          <th>Action</th>
          <th>Target</th>
          <th>Detail</th>
        </tr>
      </thead>
      <tbody>
        ${entries.map(
          (entry) =>
            html`<tr>
              <td>${when(entry.atMs)}</td>
              <td>${entry.actor}</td>
              <td>${entry.action}</td>
              <td>${entry.target}</td>
              <td><code>${Object.keys(entry.detail).length > 0 ? JSON.stringify(entry.detail).slice(0, 300) : ""}</code></td>
            </tr>`,
        )}
      </tbody>
    </table>
  </section>`;
}
