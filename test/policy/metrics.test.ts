// The policy Worker's side of the metrics: RouterReports.metrics checks a router's flush and
// adds it into the destinations' MeshMetrics objects; GET /v1/metrics reads every Service's
// object of the current config and answers the view.
import { describe, expect, it } from "vitest";
import type { MetricsView } from "../../core/observability/view.ts";
import { EdgeAccumulator, codeOf } from "../../core/observability/metrics.ts";
import type { CallFacts } from "../../core/observability/data-point.ts";
import { apply, call, expectJson, route, routerReports, service } from "./helpers.ts";
import { parsePrometheus, samplesOf, seriesOf } from "../helpers/prometheus.ts";

function facts(destination: string, backend: string, status: number, latencyMs: number): CallFacts {
  return {
    caller: "orders",
    destination,
    backend,
    route: `${destination}/0`,
    method: "GET",
    outcome: "backend",
    status,
    colo: "-",
    traceId: "",
    latencyMs,
    upstreamLatencyMs: latencyMs,
    attempts: 1,
    bytes: 10,
  };
}

function flush(destination: string, calls: [string, number][], now = Date.now()) {
  const acc = new EdgeAccumulator();
  for (const [backend, status] of calls) {
    acc.add(facts(destination, backend, status, 20), codeOf(status, undefined), now);
  }
  return {
    isolate: crypto.randomUUID(),
    colo: null,
    sentAt: now,
    destinations: [
      {
        destination,
        edges: acc.take(),
        breakers: [{ backend: `${destination}-v2`, state: "open", openUntil: now + 30_000 }],
        denials: [
          {
            at: now,
            caller: "stranger",
            destination,
            code: "forbidden",
            reason: "no AuthorizationPolicy allows it",
            requestId: "req-1",
          },
        ],
      },
    ],
  };
}

describe("metrics", () => {
  it("adds two isolates' flushes and answers the golden metrics, splits, breakers and denials", async () => {
    const d = "shop";
    await apply([
      service(d),
      service(`${d}-v1`),
      service(`${d}-v2`, "ECHO_V2"),
      route(d, d, [`${d}-v1`, `${d}-v2`]),
    ]);
    const calls: [string, number][] = [
      ...Array.from({ length: 30 }, (): [string, number] => [`${d}-v1`, 200]),
      ...Array.from({ length: 10 }, (): [string, number] => [`${d}-v2`, 503]),
    ];
    const reports = routerReports();
    await reports.metrics(flush(d, calls));
    await reports.metrics(flush(d, calls));

    const view = await expectJson<MetricsView>(call("GET", "/v1/metrics?window=30s"));
    expect(view.source).toBe("metrics-objects");
    expect(view.windowSeconds).toBe(30);
    const edges = view.edges.filter((e) => e.destination === d);
    expect(edges.map((e) => [e.backend, e.requests, e.successRate])).toEqual([
      [`${d}-v1`, 60, 1],
      [`${d}-v2`, 20, 0],
    ]);
    expect(edges[0]!.rps).toBeGreaterThan(0);
    expect(view.services.find((s) => s.name === d)).toMatchObject({
      requests: 80,
      successRate: 0.75,
    });
    const split = view.splits.find((s) => s.destination === d)!;
    expect(split.backends).toEqual([
      { backend: `${d}-v1`, configuredPercent: 50, observedPercent: 75, requests: 60 },
      { backend: `${d}-v2`, configuredPercent: 50, observedPercent: 25, requests: 20 },
    ]);
    expect(view.breakers.find((b) => b.backend === `${d}-v2`)).toMatchObject({
      state: "open",
      destination: d,
    });
    expect(view.denials.filter((x) => x.destination === d)).toHaveLength(2);
    expect(view.problems).toEqual([]);
  });

  it("GET /metrics: the totals as Prometheus text that a parser reads back exactly", async () => {
    const d = "scraped";
    await apply([
      service(d),
      service(`${d}-v1`),
      service(`${d}-v2`, "ECHO_V2"),
      route(d, d, [`${d}-v1`, `${d}-v2`]),
    ]);
    const calls: [string, number][] = [
      ...Array.from({ length: 7 }, (): [string, number] => [`${d}-v1`, 200]),
      ...Array.from({ length: 3 }, (): [string, number] => [`${d}-v2`, 503]),
    ];
    await routerReports().metrics(flush(d, calls));
    expect((await call("GET", "/metrics", { headers: {} })).status).toBe(401);
    const response = await call("GET", "/metrics");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    const families = parsePrometheus(await response.text());
    const requests = samplesOf(families, "meshwork_requests_total").filter(
      (s) => s.labels.destination_service === d,
    );
    expect(
      requests.map((s) => [
        s.labels.destination_workload,
        s.labels.response_code,
        s.labels.source_workload,
        s.value,
      ]),
    ).toEqual(
      expect.arrayContaining([
        [`${d}-v1`, "200", "orders", 7],
        [`${d}-v2`, "503", "orders", 3],
      ]),
    );
    const latency = seriesOf(families, "meshwork_request_duration_milliseconds").filter(
      (s) => s.labels.destination_service === d,
    );
    expect(latency.map((s) => s.count).sort()).toEqual([3, 7]);
    for (const series of latency) expect(series.buckets.at(-1)).toEqual([Infinity, series.count]);
    const breaker = samplesOf(families, "meshwork_circuit_breaker_state").filter(
      (s) => s.labels.destination_workload === `${d}-v2` && s.value === 1,
    );
    expect(breaker.map((s) => s.labels.state)).toEqual(["open"]);
    expect(samplesOf(families, "meshwork_config_version")[0]!.value).toBeGreaterThan(0);
  });

  it("refuses a malformed flush whole, saying what is wrong", async () => {
    const bad = flush("shop", [["shop-v1", 200]]);
    bad.destinations[0]!.edges[0]!.requests = -1;
    await expect(routerReports().metrics(bad)).rejects.toThrow(
      /bad_request: invalid metrics report: .*requests/,
    );
    const stray = flush("shop", [["shop-v1", 200]]);
    stray.destinations[0]!.destination = "elsewhere";
    await expect(routerReports().metrics(stray)).rejects.toThrow(/filed under elsewhere/);
  });

  it("?window must be 10 s to 15 min, and the metrics answer only a credential", async () => {
    for (const window of ["5", "16m", "soon", "-1"]) {
      const response = await call("GET", `/v1/metrics?window=${window}`);
      expect(response.status, window).toBe(400);
    }
    expect((await call("GET", "/v1/metrics", { headers: {} })).status).toBe(401);
  });
});
