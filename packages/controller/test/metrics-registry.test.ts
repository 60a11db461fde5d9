// ControllerMetrics on its own: a fake clock and a fake fleet, no sockets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { HostPhase } from "@ferry/protocol";
import { ControllerMetrics, type FleetView } from "../src/metrics/registry.js";
import { routeOf } from "../src/metrics/http-metrics.js";
import { parseExposition, sampleKey } from "./metrics-scrape.js";

function withClock(fleet?: FleetView) {
  const clock = { now: 1_000_000 };
  const metrics = new ControllerMetrics({ processMetrics: false, now: () => clock.now, ...(fleet ? { fleet } : {}) });
  return { clock, metrics, samples: async () => parseExposition(await metrics.text()) };
}

test("publish to confirmed: timed from the publish of the serial the host confirms", async () => {
  const { clock, metrics, samples } = withClock();
  metrics.desiredPublished({ name: "web1", desiredSerial: 3, desiredActivate: true });
  clock.now += 42_000;
  metrics.agentResult("web1", 3, HostPhase.HOST_PHASE_ACTIVE);
  // A late answer to the same serial, and an answer to a serial never published here (a restart), time nothing.
  metrics.agentResult("web1", 3, HostPhase.HOST_PHASE_ACTIVE);
  metrics.agentResult("web2", 9, HostPhase.HOST_PHASE_ACTIVE);
  const s = await samples();
  assert.equal(s.get("ferry_publish_to_confirmed_seconds_count"), 1);
  assert.equal(s.get("ferry_publish_to_confirmed_seconds_sum"), 42);
  assert.equal(s.get(sampleKey("ferry_publish_to_confirmed_seconds_bucket", { le: "30" })), 0);
  assert.equal(s.get(sampleKey("ferry_publish_to_confirmed_seconds_bucket", { le: "60" })), 1);
  assert.equal(s.get(sampleKey("ferry_deployments_total", { outcome: "confirmed" })), 3);
});

test("a superseded publish is not timed; a failure, a rollback and a failed prefetch are told apart", async () => {
  const { clock, metrics, samples } = withClock();
  metrics.desiredPublished({ name: "web1", desiredSerial: 1, desiredActivate: true });
  metrics.desiredPublished({ name: "web1", desiredSerial: 2, desiredActivate: true });
  clock.now += 5000;
  metrics.agentResult("web1", 1, HostPhase.HOST_PHASE_ACTIVE);
  metrics.agentResult("web1", 2, HostPhase.HOST_PHASE_ROLLED_BACK);
  metrics.desiredPublished({ name: "web2", desiredSerial: 1, desiredActivate: false });
  metrics.agentResult("web2", 1, HostPhase.HOST_PHASE_FAILED);
  metrics.desiredPublished({ name: "web3", desiredSerial: 1, desiredActivate: true });
  metrics.agentResult("web3", 1, HostPhase.HOST_PHASE_FAILED);
  metrics.agentResult("web3", 2, 999 as HostPhase);
  const s = await samples();
  assert.equal(s.get("ferry_publish_to_confirmed_seconds_count"), 0);
  for (const [outcome, count] of Object.entries({ confirmed: 1, "rolled-back": 1, "prefetch-failed": 1, failed: 1, other: 1 })) {
    assert.equal(s.get(sampleKey("ferry_deployments_total", { outcome })), count, outcome);
  }
  assert.equal(s.get(sampleKey("ferry_desired_published_total", { kind: "activate" })), 3);
  assert.equal(s.get(sampleKey("ferry_desired_published_total", { kind: "prefetch" })), 1);
});

test("label values from agents and clients are bounded: unknown kinds and codes become other", async () => {
  const { metrics, samples } = withClock();
  for (let i = 0; i < 1000; i++) {
    metrics.frameIn(`kind-${i}`);
    metrics.agentRefused(`E_MADE_UP_${i}`);
    metrics.grpcCall("Deploy", `E_NOPE_${i}`, 0.001);
  }
  metrics.agentRefused("E_AUTH");
  const s = await samples();
  assert.equal(s.get(sampleKey("ferry_agent_frames_total", { direction: "in", kind: "other" })), 1000);
  assert.equal(s.get(sampleKey("ferry_agent_refusals_total", { code: "other" })), 1000);
  assert.equal(s.get(sampleKey("ferry_agent_refusals_total", { code: "E_AUTH" })), 1);
  assert.equal(s.get(sampleKey("ferry_grpc_requests_total", { code: "other", method: "Deploy" })), 1000);
  assert.ok(s.size < 100, `${s.size} series`);
});

test("route labels never carry the path", () => {
  assert.equal(routeOf("/cache/nix-cache-info"), "cache-info");
  assert.equal(routeOf("/cache/pz5wv3mkbf4bwihvsz8yqydfwb9bfhy5.narinfo"), "cache-narinfo");
  assert.equal(routeOf("/cache/nar/0dkpq4ayyk5lq5w4nqyyyzcsjy9fwz3b9d8y8pr3nvb0jkrk5yk7.nar.zst"), "cache-nar");
  assert.equal(routeOf("/cache/../../etc/passwd"), "cache-other");
  assert.equal(routeOf(`/${"x".repeat(10_000)}`), "other");
  assert.equal(routeOf("/metrics"), "metrics");
});

test("fleet gauges are computed at scrape time, and concurrent scrapes share one collection", async () => {
  let listed = 0;
  const hosts = [
    { name: "web1", phase: HostPhase.HOST_PHASE_ACTIVE },
    { name: "web2", phase: HostPhase.HOST_PHASE_ACTIVE },
    { name: "db1", phase: HostPhase.HOST_PHASE_FAILED },
  ];
  const online = new Set(["web1", "db1"]);
  const { metrics, samples } = withClock({
    listHosts: async () => {
      listed++;
      await new Promise((resolve) => setTimeout(resolve, 20));
      return hosts;
    },
    isOnline: (name) => online.has(name),
  });
  const texts = await Promise.all(Array.from({ length: 50 }, () => metrics.text()));
  assert.equal(new Set(texts).size, 1);
  // One listing per collection, shared by both gauges.
  assert.equal(listed, 1);
  online.delete("db1");
  hosts.pop();
  const s = await samples();
  assert.equal(s.get(sampleKey("ferry_hosts", { link: "online", phase: "active" })), 1);
  assert.equal(s.get(sampleKey("ferry_hosts", { link: "offline", phase: "active" })), 1);
  assert.equal(s.get(sampleKey("ferry_hosts", { link: "online", phase: "failed" })), undefined, "a phase no host is in any more is gone");
  assert.equal(s.get("ferry_agent_connections"), 1);
});

test("the Grafana dashboard (deploy/grafana/ferry.json) queries only metrics the controller and agent define", async () => {
  const root = fileURLToPath(new URL("../../../", import.meta.url));
  const dashboard = JSON.parse(readFileSync(join(root, "deploy/grafana/ferry.json"), "utf8")) as { panels: { targets?: { expr: string }[] }[] };
  const used = new Set(dashboard.panels.flatMap((panel) => (panel.targets ?? []).flatMap((target) => target.expr.match(/\bferry_[a-z_]+/g) ?? [])));
  const controller = (await new ControllerMetrics({ fleet: { listHosts: async () => [], isOnline: () => false } }).registry.getMetricsAsJSON()).map(
    (metric) => metric.name,
  );
  // The agent's names, as its textfile module declares them.
  const agentSource = readFileSync(join(root, "packages/agent/src/metrics-textfile.ts"), "utf8");
  const agent = [...agentSource.matchAll(/name: "(ferry_agent_[a-z_]+)"/g)].map((match) => match[1] as string);
  const defined = new Set([...controller, ...agent]);
  assert.ok(used.size >= 15, `${used.size} metrics used`);
  for (const name of used) assert.ok(defined.has(name.replace(/_(bucket|count|sum)$/, "")), `${name} is not defined`);
});
