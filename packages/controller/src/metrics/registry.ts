import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { formatPhase, isErrorCode } from "@ferry/core";
import { HostPhase } from "@ferry/protocol";
import type { RolloutOutcome } from "../rollouts/outcome.js";
import type { HostRecord } from "../store/state-store.js";

/**
 * What the agent hub and its sessions report. Every label value they pass is
 * bounded here (frame kinds by the protocol, codes by the error table, phases
 * by the enum), so a misbehaving agent cannot grow the series count.
 */
export interface AgentLinkMetrics {
  frameIn(kind: string): void;
  frameOut(kind: string): void;
  agentConnected(): void;
  agentRefused(code: string): void;
  /** A desired system went out to a host (deploy, rollout step, released window, bundle). */
  desiredPublished(host: Pick<HostRecord, "name" | "desiredSerial" | "desiredActivate">): void;
  /** A host's result for `serial` arrived, ending in `phase`. */
  agentResult(hostName: string, serial: number, phase: HostPhase): void;
}

/** The fleet as it stands, read at each scrape instead of being kept in step by hand. */
export interface FleetView {
  listHosts(): Promise<readonly Pick<HostRecord, "name" | "phase">[]>;
  isOnline(hostName: string): boolean;
}

export interface ControllerMetricsOptions {
  fleet?: FleetView;
  /** Node process metrics (CPU, memory, event loop, GC) under the ferry_ prefix. */
  processMetrics?: boolean;
  now?: () => number;
}

/** Outcomes of an agent's result; what a prefetch ended in is told apart by what was published. */
export type DeploymentOutcome = "confirmed" | "boot-pending" | "rolled-back" | "failed" | "prefetched" | "prefetch-failed" | "other";

const FRAME_KINDS = new Set([
  "hello",
  "heartbeat",
  "progress",
  "result",
  "desiredRequest",
  "dryActivateOutcome",
  "log",
  "welcome",
  "desired",
  "heartbeatAck",
  "refusal",
  "dryActivate",
]);
/** From a publish to a confirmation: seconds for a small change, up to an hour for a slow link or a long confirm timeout. */
const CONFIRM_BUCKETS = [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600];
const REQUEST_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120];
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** A label value from an untrusted string: kept if it is one of `known`, else "other". */
function bounded(value: string, known: ReadonlySet<string> | ((value: string) => boolean)): string {
  return (typeof known === "function" ? known(value) : known.has(value)) ? value : "other";
}

function outcomeOf(phase: HostPhase, prefetch: boolean): DeploymentOutcome {
  switch (phase) {
    case HostPhase.HOST_PHASE_ACTIVE:
      return "confirmed";
    case HostPhase.HOST_PHASE_BOOT_PENDING:
      return "boot-pending";
    case HostPhase.HOST_PHASE_ROLLED_BACK:
      return "rolled-back";
    case HostPhase.HOST_PHASE_FETCHED:
      return "prefetched";
    case HostPhase.HOST_PHASE_FAILED:
      return prefetch ? "prefetch-failed" : "failed";
    default:
      return "other";
  }
}

/**
 * The controller's Prometheus metrics, on a registry of its own (several
 * controllers in one process, as in the tests, do not share counters).
 * Gauges of the fleet are computed from the store and the hub at scrape
 * time; counters and histograms are moved by the parts that see the events.
 */
export class ControllerMetrics implements AgentLinkMetrics {
  readonly registry = new Registry();
  private readonly now: () => number;
  /** The last publish per host: when it went out, for the publish-to-confirmed histogram. Bounded by the host count. */
  private readonly published = new Map<string, { serial: number; activate: boolean; atMs: number }>();
  /** One collection at a time: scrapes arriving meanwhile share its answer. */
  private collecting: Promise<string> | undefined;
  private fleetListing: Promise<readonly { name: string; phase: HostPhase; online: boolean }[]> | undefined;

  private readonly frames: Counter<"direction" | "kind">;
  private readonly connects: Counter;
  private readonly refusals: Counter<"code">;
  private readonly publishes: Counter<"kind">;
  private readonly deployments: Counter<"outcome">;
  private readonly confirmSeconds: Histogram;
  private readonly rollouts: Counter<"outcome">;
  private readonly cacheRequests: Counter<"method" | "status">;
  private readonly cacheBytes: Counter;
  private readonly bundleImports: Counter<"via" | "outcome">;
  private readonly httpSeconds: Histogram<"method" | "route">;
  private readonly grpcSeconds: Histogram<"method">;
  private readonly grpcCalls: Counter<"method" | "code">;

  constructor(options: ControllerMetricsOptions = {}) {
    this.now = options.now ?? Date.now;
    const registers = [this.registry];
    const fleet = options.fleet;
    if (fleet) {
      // Both gauges read one listing per collection.
      const listing = (): Promise<readonly { name: string; phase: HostPhase; online: boolean }[]> =>
        (this.fleetListing ??= fleet.listHosts().then((hosts) => hosts.map((host) => ({ ...host, online: fleet.isOnline(host.name) }))));
      new Gauge({
        name: "ferry_hosts",
        help: "Registered hosts by agent link (online, offline) and last reported phase.",
        labelNames: ["link", "phase"],
        registers,
        async collect() {
          this.reset();
          for (const host of await listing()) this.inc({ link: host.online ? "online" : "offline", phase: formatPhase(host.phase) });
        },
      });
      new Gauge({
        name: "ferry_agent_connections",
        help: "Agents connected and authenticated now.",
        registers,
        async collect() {
          this.set((await listing()).filter((host) => host.online).length);
        },
      });
    }
    this.connects = new Counter({ name: "ferry_agent_connects_total", help: "Agent connections that authenticated.", registers });
    this.refusals = new Counter({
      name: "ferry_agent_refusals_total",
      help: "Agent connections refused or closed by the controller, by error code.",
      labelNames: ["code"],
      registers,
    });
    this.frames = new Counter({
      name: "ferry_agent_frames_total",
      help: "Agent link frames, by direction (in: from agents) and message kind.",
      labelNames: ["direction", "kind"],
      registers,
    });
    this.publishes = new Counter({
      name: "ferry_desired_published_total",
      help: "Desired systems sent out to hosts, by kind (activate, prefetch).",
      labelNames: ["kind"],
      registers,
    });
    this.deployments = new Counter({
      name: "ferry_deployments_total",
      help: "Activation and prefetch results reported by agents, by outcome.",
      labelNames: ["outcome"],
      registers,
    });
    this.confirmSeconds = new Histogram({
      name: "ferry_publish_to_confirmed_seconds",
      help: "From a host's desired system being published to the host confirming it.",
      buckets: CONFIRM_BUCKETS,
      registers,
    });
    this.rollouts = new Counter({ name: "ferry_rollouts_total", help: "Finished rollouts, by outcome.", labelNames: ["outcome"], registers });
    this.cacheRequests = new Counter({
      name: "ferry_cache_requests_total",
      help: "Binary cache requests, by method and HTTP status.",
      labelNames: ["method", "status"],
      registers,
    });
    this.cacheBytes = new Counter({ name: "ferry_cache_sent_bytes_total", help: "Bytes written in answer to binary cache requests.", registers });
    this.bundleImports = new Counter({
      name: "ferry_bundle_imports_total",
      help: "Bundle imports, by path (rpc, upload) and outcome (imported, refused, failed).",
      labelNames: ["via", "outcome"],
      registers,
    });
    this.httpSeconds = new Histogram({
      name: "ferry_http_request_duration_seconds",
      help: "HTTP requests on the agent and cache listener, by method and route.",
      labelNames: ["method", "route"],
      buckets: REQUEST_BUCKETS,
      registers,
    });
    this.grpcSeconds = new Histogram({
      name: "ferry_grpc_request_duration_seconds",
      help: "Operator gRPC calls, by method (watch streams last as long as they are watched).",
      labelNames: ["method"],
      buckets: REQUEST_BUCKETS,
      registers,
    });
    this.grpcCalls = new Counter({
      name: "ferry_grpc_requests_total",
      help: "Operator gRPC calls that ended, by method and Ferry error code (ok on success).",
      labelNames: ["method", "code"],
      registers,
    });
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: "ferry_" });
  }

  frameIn(kind: string): void {
    this.frames.inc({ direction: "in", kind: bounded(kind, FRAME_KINDS) });
  }

  frameOut(kind: string): void {
    this.frames.inc({ direction: "out", kind: bounded(kind, FRAME_KINDS) });
  }

  agentConnected(): void {
    this.connects.inc();
  }

  agentRefused(code: string): void {
    this.refusals.inc({ code: bounded(code, isErrorCode) });
  }

  desiredPublished(host: Pick<HostRecord, "name" | "desiredSerial" | "desiredActivate">): void {
    this.publishes.inc({ kind: host.desiredActivate ? "activate" : "prefetch" });
    this.published.set(host.name, { serial: host.desiredSerial, activate: host.desiredActivate, atMs: this.now() });
  }

  agentResult(hostName: string, serial: number, phase: HostPhase): void {
    const sent = this.published.get(hostName);
    const forSent = sent !== undefined && sent.serial === serial;
    this.deployments.inc({ outcome: outcomeOf(phase, forSent && !sent.activate) });
    if (!forSent) return;
    this.published.delete(hostName);
    if (sent.activate && phase === HostPhase.HOST_PHASE_ACTIVE) this.confirmSeconds.observe(Math.max(0, this.now() - sent.atMs) / 1000);
  }

  rolloutFinished(outcome: Exclude<RolloutOutcome, "">): void {
    this.rollouts.inc({ outcome });
  }

  cacheResponse(method: string, status: number, bytes: number): void {
    this.cacheRequests.inc({ method, status: String(status) });
    if (bytes > 0) this.cacheBytes.inc(bytes);
  }

  bundleImport(via: "rpc" | "upload", outcome: "imported" | "refused" | "failed"): void {
    this.bundleImports.inc({ via, outcome });
  }

  httpRequest(method: string, route: string, seconds: number): void {
    this.httpSeconds.observe({ method, route }, seconds);
  }

  grpcCall(method: string, code: string, seconds: number): void {
    this.grpcSeconds.observe({ method }, seconds);
    this.grpcCalls.inc({ method, code: code === "ok" ? code : bounded(code, isErrorCode) });
  }

  /** The exposition text; concurrent scrapes share one collection. */
  text(): Promise<string> {
    if (this.collecting) return this.collecting;
    this.fleetListing = undefined;
    this.collecting = this.registry.metrics().finally(() => {
      this.collecting = undefined;
      this.fleetListing = undefined;
    });
    return this.collecting;
  }
}
