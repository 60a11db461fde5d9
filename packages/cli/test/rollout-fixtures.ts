// Rollouts as the controller reports them, at the moments the live view must
// get right: a canary done, a wave with hosts activating, reverting and
// failed at once, a pause between waves, a gate.
import { ActivationMode, type Rollout, type RolloutHost } from "@ferry/protocol";

export const T0 = Date.UTC(2026, 10, 22, 12, 0, 0);
export const NOW = T0 + 3 * 60_000 + 12_000;

export function host(name: string, wave: number, state: string, errorCode = "", errorMessage = ""): RolloutHost {
  return { name, storePath: `/nix/store/${"a".repeat(32)}-nixos-system-${name}`, wave, state, errorCode, errorMessage, previousSystem: "", updatedAtMs: T0 };
}

export function rollout(patch: Partial<Rollout> & { hosts: RolloutHost[] }): Rollout {
  return {
    id: "r-mhz3k1c0-5f2a9e",
    state: "running",
    environment: "production",
    manifestDigest: "",
    policy: {
      canary: { value: 1, percent: false },
      batch: { value: 4, percent: false },
      maxUnavailable: 2,
      failureThreshold: { value: 2, percent: false },
      minExecuted: 1,
      pauseMs: 60_000,
      gate: false,
      progressDeadlineMs: 600_000,
      rollbackOnAbort: true,
      prefetchTimeoutMs: 1_800_000,
      skipUnfetchable: false,
      acceptFailingChecks: false,
    },
    waveCount: Math.max(...patch.hosts.map((h) => h.wave)),
    currentWave: 2,
    reason: "",
    requestedBy: "ops@laptop",
    createdAtMs: T0,
    updatedAtMs: NOW - 5_000,
    resumeAtMs: 0,
    phaseDeadlineAtMs: 0,
    mode: ActivationMode.ACTIVATION_MODE_UNSPECIFIED,
    outcome: "",
    ...patch,
  };
}

/** Wave 2 after the rollout aborted with rollback-on-abort: one host reverting, one still activating, one rolled back on its own. */
export const MIXED = rollout({
  state: "aborted",
  reason: "2 of 3 finished hosts failed: web-4 E_HEALTH_CHECK_FAILED, web-5 E_ACTIVATION_FAILED",
  hosts: [
    host("web-1", 1, "confirmed"),
    host("web-2", 2, "reverting"),
    host("web-3", 2, "activating"),
    host("web-4", 2, "rolled-back", "E_HEALTH_CHECK_FAILED", "http://localhost/health answered 503"),
    host("web-5", 2, "failed", "E_ACTIVATION_FAILED", "switch-to-configuration exited 1"),
    host("web-6", 3, "prefetched"),
    host("web-7", 3, "prefetched"),
    host("web-8", 3, "waiting-window"),
    host("web-9", 3, "prefetched"),
    host("db-1", 4, "skipped", "E_SUPERSEDED", "another deployment replaced this host's desired system"),
    host("db-2", 4, "prefetched"),
  ],
});

/** Canary confirmed, wave 2 running against its progress deadline. */
export const RUNNING = rollout({
  phaseDeadlineAtMs: NOW + 4 * 60_000 + 10_000,
  hosts: [
    host("web-1", 1, "confirmed"),
    host("web-2", 2, "confirmed"),
    host("web-3", 2, "activating"),
    host("web-4", 2, "activating"),
    host("web-5", 2, "prefetched"),
    host("web-6", 3, "prefetched"),
    host("web-7", 3, "prefetched"),
  ],
});

/** Wave 2 done; wave 3 starts after the pause between waves. */
export const PAUSING = rollout({
  currentWave: 3,
  resumeAtMs: NOW + 42_000,
  phaseDeadlineAtMs: NOW + 42_000 + 600_000,
  hosts: [
    host("web-1", 1, "confirmed"),
    host("web-2", 2, "confirmed"),
    host("web-3", 2, "confirmed"),
    host("web-6", 3, "prefetched"),
    host("web-7", 3, "prefetched"),
  ],
});

/** The canary is done and the rollout waits for `ferry rollout promote`. */
export const GATED = rollout({
  state: "waiting-gate",
  currentWave: 1,
  reason: "wave 1 done; promote to start wave 2",
  hosts: [host("web-1", 1, "confirmed"), host("web-2", 2, "prefetched"), host("web-3", 2, "prefetched")],
});
