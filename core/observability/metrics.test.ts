import { describe, expect, it } from "vitest";
import { LATENCY_BOUNDS_MS, bucketOf } from "../resilience/latency.ts";
import { dataPoint, type CallFacts } from "./data-point.ts";
import { codeOf, EdgeAccumulator, goldenMetrics, SLOT_MS, Tally } from "./metrics.ts";
import { MAX_DENIALS, MetricsStore } from "./metrics-store.ts";
import { buildMetricsView, configuredBreakers, configuredSplits } from "./view.ts";

const T0 = Date.UTC(2026, 11, 7, 12, 0, 0);

function facts(overrides: Partial<CallFacts> = {}): CallFacts {
  return {
    caller: "orders",
    destination: "payments",
    backend: "payments-v1",
    route: "payments/0",
    method: "GET",
    outcome: "backend",
    status: 200,
    colo: "-",
    traceId: "",
    latencyMs: 10,
    upstreamLatencyMs: 9,
    attempts: 1,
    bytes: 100,
    ...overrides,
  };
}

/** A seeded stream of numbers in [0, 1). */
function seeded(seed: number) {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

describe("data point", () => {
  it("puts each field in its documented column", () => {
    const point = dataPoint(facts({ status: 503, outcome: "circuit_open", traceId: "ab" }));
    expect(point.indexes).toEqual(["payments"]);
    expect(point.blobs).toEqual([
      "orders",
      "payments",
      "payments-v1",
      "payments/0",
      "GET",
      "circuit_open",
      "5xx",
      "-",
      "ab",
    ]);
    expect(point.doubles).toEqual([10, 9, 1, 503, 100]);
  });
});

describe("edge accumulator", () => {
  it("counts per edge and slot, and starts afresh after a take", () => {
    const acc = new EdgeAccumulator();
    acc.add(facts(), "200", T0);
    acc.add(facts({ status: 500 }), "500", T0 + 1);
    acc.add(facts({ backend: "payments-v2" }), "200", T0 + 2);
    acc.add(facts(), "200", T0 + SLOT_MS); // the next slot
    const samples = acc.take();
    expect(samples).toHaveLength(3);
    const first = samples.find((s) => s.slot === T0 && s.backend === "payments-v1")!;
    expect(first).toMatchObject({ requests: 2, failures: 1, codes: { "200": 1, "500": 1 } });
    expect(samples.find((s) => s.slot === T0 + SLOT_MS)!.requests).toBe(1);
    expect(acc.isEmpty).toBe(true);
    expect(acc.take()).toEqual([]);
  });

  it("bounds the edges of a slot, counting what it leaves out", () => {
    const acc = new EdgeAccumulator(2);
    for (const caller of ["a", "b", "c", "d"]) acc.add(facts({ caller }), "200", T0);
    expect(acc.take()).toHaveLength(2);
    expect(acc.overflow).toBe(2);
  });

  it("codes name the mesh's error beside the status", () => {
    expect(codeOf(200, undefined)).toBe("200");
    expect(codeOf(503, "circuit_open")).toBe("503 circuit_open");
  });
});

describe("metrics store", () => {
  it("adds isolates' counts exactly, in the window and in the totals", () => {
    const store = new MetricsStore("payments");
    const random = seeded(7);
    let sent = 0;
    for (let isolate = 0; isolate < 5; isolate++) {
      const acc = new EdgeAccumulator();
      for (let i = 0; i < 400; i++) {
        const status = random() < 0.1 ? 503 : 200;
        acc.add(facts({ status }), codeOf(status, undefined), T0 + i * 50);
        sent += 1;
      }
      store.record(
        { destination: "payments", edges: acc.take(), breakers: [], denials: [] },
        T0 + 20_000,
      );
    }
    const reading = store.window(60_000, T0 + 20_000);
    const counted = reading.edges.reduce((n, e) => n + e.counts.requests, 0);
    expect(counted).toBe(sent);
    const totals = store.totalsReading().edges.reduce((n, e) => n + e.counts.requests, 0);
    expect(totals).toBe(sent);
    // The object began at T0: the window covers 20 s, not 60.
    expect(reading.seconds).toBe(20);
    const series = reading.series.reduce((n, [, requests]) => n + requests, 0);
    expect(series).toBe(sent);
  });

  it("reads percentiles within one bucket of the exact value", () => {
    const random = seeded(42);
    const latencies = Array.from({ length: 5000 }, () => Math.exp(random() * 7)); // 1 ms … 1 s
    const acc = new EdgeAccumulator();
    latencies.forEach((ms, i) => acc.add(facts({ latencyMs: ms }), "200", T0 + (i % 1000)));
    const store = new MetricsStore("payments");
    store.record(
      { destination: "payments", edges: acc.take(), breakers: [], denials: [] },
      T0 + 1000,
    );
    const edge = store.window(60_000, T0 + 1000).edges[0]!;
    const golden = goldenMetrics(Tally.of(edge.counts), 1);
    const sorted = [...latencies].sort((a, b) => a - b);
    for (const [q, read] of [
      [0.5, golden.latencyMs.p50],
      [0.95, golden.latencyMs.p95],
      [0.99, golden.latencyMs.p99],
    ] as const) {
      const exact = sorted[Math.ceil(q * sorted.length) - 1]!;
      const distance = Math.abs(bucketOf(read!) - bucketOf(exact));
      expect(distance, `p${q * 100}: read ${read}, exact ${exact}`).toBeLessThanOrEqual(1);
    }
    expect(golden.latencyMs.mean).toBeCloseTo(latencies.reduce((a, b) => a + b, 0) / 5000, 6);
  });

  it("forgets slots past 15 minutes from the windows, never from the totals", () => {
    const store = new MetricsStore("payments");
    const acc = new EdgeAccumulator();
    acc.add(facts(), "200", T0);
    store.record({ destination: "payments", edges: acc.take(), breakers: [], denials: [] }, T0);
    const later = T0 + 16 * 60_000;
    expect(store.window(15 * 60_000, later).edges).toEqual([]);
    expect(store.totalsReading().edges[0]!.counts.requests).toBe(1);
    expect(store.prune(later)).toEqual([]);
  });

  it("keeps the last breaker report per backend and the newest denials", () => {
    const store = new MetricsStore("payments");
    const denial = (at: number) => ({
      at,
      caller: "x",
      destination: "payments",
      code: "forbidden",
      reason: "no policy allows it",
      requestId: String(at),
    });
    store.record(
      {
        destination: "payments",
        edges: [],
        breakers: [{ backend: "payments-v1", state: "open", openUntil: T0 + 5000 }],
        denials: Array.from({ length: MAX_DENIALS + 5 }, (_, i) => denial(T0 + i)),
      },
      T0,
    );
    store.record(
      {
        destination: "payments",
        edges: [],
        breakers: [{ backend: "payments-v1", state: "closed", openUntil: null }],
        denials: [],
      },
      T0 + 1000,
    );
    const reading = store.window(60_000, T0 + 1000);
    expect(reading.breakers).toEqual([
      { backend: "payments-v1", state: "closed", openUntil: null, reportedAt: T0 + 1000 },
    ]);
    expect(reading.denials).toHaveLength(MAX_DENIALS);
    expect(reading.denials[0]!.requestId).toBe(String(T0 + 5));
  });
});

describe("view", () => {
  it("golden metrics per edge and Service, and configured against observed splits", () => {
    const store = new MetricsStore("payments");
    const acc = new EdgeAccumulator();
    for (let i = 0; i < 90; i++) acc.add(facts(), "200", T0 + i);
    for (let i = 0; i < 10; i++) {
      acc.add(facts({ backend: "payments-v2", status: 503 }), "503", T0 + i);
    }
    store.record(
      { destination: "payments", edges: acc.take(), breakers: [], denials: [] },
      T0 + 10_000,
    );
    const resources = [
      { kind: "Service", metadata: { name: "payments" } },
      {
        kind: "HTTPRoute",
        metadata: { name: "payments" },
        spec: {
          parentRefs: [{ name: "payments" }],
          rules: [
            {
              backendRefs: [
                { name: "payments-v1", weight: 80 },
                { name: "payments-v2", weight: 20 },
              ],
            },
          ],
        },
      },
    ];
    const view = buildMetricsView({
      source: "metrics-objects",
      windowMs: 60_000,
      now: T0 + 10_000,
      readings: [store.window(60_000, T0 + 10_000)],
      splits: configuredSplits(resources),
    });
    expect(view.edges.map((e) => [e.backend, e.requests, e.rps])).toEqual([
      ["payments-v1", 90, 9],
      ["payments-v2", 10, 1],
    ]);
    expect(view.services).toHaveLength(1);
    expect(view.services[0]).toMatchObject({ name: "payments", requests: 100, successRate: 0.9 });
    expect(view.services[0]!.classes).toEqual({ "2xx": 90, "5xx": 10 });
    expect(view.splits).toEqual([
      {
        destination: "payments",
        route: "payments/0",
        backends: [
          { backend: "payments-v1", configuredPercent: 80, observedPercent: 90, requests: 90 },
          { backend: "payments-v2", configuredPercent: 20, observedPercent: 10, requests: 10 },
        ],
      },
    ]);
    expect(LATENCY_BOUNDS_MS).toContain(view.edges[0]!.latencyMs.p50);
  });

  it("shows a configured breaker closed until a router reports it", () => {
    const resources = [
      {
        kind: "BackendPolicy",
        metadata: { name: "b" },
        spec: { targetRefs: [{ kind: "Service", name: "echo-v3" }], circuitBreaker: {} },
      },
      {
        kind: "BackendPolicy",
        metadata: { name: "r" },
        spec: { targetRefs: [{ name: "x" }], retry: {} },
      },
    ];
    const view = buildMetricsView({
      source: "metrics-objects",
      windowMs: 60_000,
      now: T0,
      readings: [],
      splits: [],
      breakers: configuredBreakers(resources),
    });
    expect(view.breakers).toEqual([
      { destination: null, backend: "echo-v3", state: "closed", openUntil: null, reportedAt: null },
    ]);
  });
});
