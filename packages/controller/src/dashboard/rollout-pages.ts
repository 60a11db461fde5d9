import { groupBy } from "@ferry/core";
import { phaseDeadlineAtMs } from "../rollouts/deadline.js";
import { rolloutOutcome } from "../rollouts/outcome.js";
import type { Quantity, RolloutHostRecord, RolloutRecord } from "../store/rollout-records.js";
import { ago, state, storePath, when } from "./format.js";
import { html, segment, type SafeHtml } from "./html.js";

/** Rollouts on the list page, newest first. */
export const ROLLOUTS_SHOWN = 50;

const quantity = (q: Quantity): string => `${q.value}${q.percent ? "%" : ""}`;
const duration = (ms: number): string => (ms <= 0 ? "none" : ms % 60_000 === 0 ? `${ms / 60_000} min` : `${Math.round(ms / 1000)} s`);

function counts(hosts: readonly RolloutHostRecord[]): string {
  const by = new Map<string, number>();
  for (const host of hosts) by.set(host.state, (by.get(host.state) ?? 0) + 1);
  return [...by].map(([name, count]) => `${count} ${name}`).join(", ");
}

export function rolloutsPage(rollouts: readonly RolloutRecord[], nowMs: number): SafeHtml {
  return html`<section id="live">
    <h1>Rollouts</h1>
    ${
      rollouts.length === 0
        ? html`<p class="muted">No rollouts yet: start one with ferry rollout start.</p>`
        : html`<table>
            <thead>
              <tr>
                <th>Rollout</th>
                <th>State</th>
                <th>Environment</th>
                <th>Wave</th>
                <th>Hosts</th>
                <th>By</th>
                <th>Updated</th>
              </tr>
            </thead>
            <tbody>
              ${rollouts.map(
                (rollout) =>
                  html`<tr data-rollout="${rollout.id}">
                    <td><a href="/ui/rollouts/${segment(rollout.id)}">${rollout.id}</a></td>
                    <td>${state(rollout.state)}</td>
                    <td>${rollout.environment || "-"}</td>
                    <td>${rollout.currentWave} / ${rollout.waveCount}</td>
                    <td>${counts(rollout.hosts)}</td>
                    <td>${rollout.requestedBy}</td>
                    <td>${ago(rollout.updatedAtMs, nowMs)}</td>
                  </tr>`,
              )}
            </tbody>
          </table>`
    }
  </section>`;
}

function wave(number: number, hosts: readonly RolloutHostRecord[], current: number): SafeHtml {
  const title = number === 0 ? "Not in a wave" : `Wave ${number}${number === 1 ? " (canary)" : ""}${number === current ? " · current" : ""}`;
  return html`<h3>${title}</h3>
    <table>
      <thead>
        <tr>
          <th>Host</th>
          <th>State</th>
          <th>System</th>
          <th>Error</th>
          <th>Updated</th>
        </tr>
      </thead>
      <tbody>
        ${hosts.map(
          (host) =>
            html`<tr data-host="${host.name}">
              <td><a href="/ui/hosts/${segment(host.name)}">${host.name}</a></td>
              <td>${state(host.state)}</td>
              <td>${storePath(host.storePath)}</td>
              <td>${host.errorCode ? html`<strong class="bad">${host.errorCode}</strong> ` : ""}${host.errorMessage}</td>
              <td>${when(host.updatedAtMs)}</td>
            </tr>`,
        )}
      </tbody>
    </table>`;
}

export function rolloutPage(rollout: RolloutRecord, nowMs: number): SafeHtml {
  const policy = rollout.policy;
  const deadline = phaseDeadlineAtMs(rollout);
  const waves = groupBy(rollout.hosts, (host) => host.wave);
  const outcome = rolloutOutcome(rollout);
  return html`<section id="live">
    <h1>Rollout ${rollout.id}</h1>
    <dl>
      <dt>State</dt>
      <dd id="rollout-state">${state(rollout.state)}${outcome ? html` <span class="muted">(${outcome})</span>` : ""}</dd>
      <dt>Reason</dt>
      <dd>${rollout.reason || "-"}</dd>
      <dt>Wave</dt>
      <dd>${rollout.currentWave} of ${rollout.waveCount}</dd>
      ${
        rollout.resumeAtMs > 0
          ? html`<dt>Resumes</dt>
              <dd>at ${when(rollout.resumeAtMs)}</dd>`
          : ""
      }
      ${
        deadline > 0
          ? html`<dt>Phase deadline</dt>
              <dd>${when(deadline)} (aborts if the phase has not finished)</dd>`
          : ""
      }
      <dt>Environment</dt>
      <dd>${rollout.environment || "-"}</dd>
      <dt>Started by</dt>
      <dd>${rollout.requestedBy}, ${when(rollout.createdAtMs)}</dd>
      <dt>Updated</dt>
      <dd>${ago(rollout.updatedAtMs, nowMs)}</dd>
      <dt>Policy</dt>
      <dd>
        canary ${quantity(policy.canary)}, batches of ${quantity(policy.batch)}, at most ${policy.maxUnavailable} unavailable, pause ${duration(policy.pauseMs)}
        between waves${policy.gate ? ", manual promotion gate" : ""}
      </dd>
      <dt>Thresholds</dt>
      <dd>
        aborts at ${quantity(policy.failureThreshold)} failed (after ${policy.minExecuted} executed), progress deadline ${duration(policy.progressDeadlineMs)},
        prefetch timeout ${duration(policy.prefetchTimeoutMs)},
        ${policy.rollbackOnAbort ? "rolls switched hosts back on abort" : "keeps switched hosts on abort"}${policy.skipUnfetchable ? ", skips unfetchable hosts" : ""}
      </dd>
    </dl>
    <h2>Waves</h2>
    ${[...waves.keys()].sort((a, b) => a - b).map((number) => wave(number, waves.get(number) as RolloutHostRecord[], rollout.currentWave))}
  </section>`;
}

/** The operator's controls, outside the live part so a typed reason survives updates; the engine refuses an action the state does not allow. */
export function rolloutActions(rollout: RolloutRecord, csrf: string): SafeHtml {
  return html`<form method="post" action="/ui/rollouts/${segment(rollout.id)}/control" class="actions" id="rollout-actions">
    <input type="hidden" name="csrf" value="${csrf}" />
    <label>Reason <input name="reason" maxlength="500" size="40" /></label>
    <button name="action" value="pause">Pause</button>
    <button name="action" value="resume">Resume</button>
    <button name="action" value="promote">Promote</button>
    <button name="action" value="abort">Abort</button>
  </form>`;
}
