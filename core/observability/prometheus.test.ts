// The Prometheus exposition of the running totals, read back by a real text-format parser
// (test/helpers/prometheus.ts): families and types, label sets as Istio names them, exact
// cumulative buckets, +Inf equal to _count, breakers as a state set, and label values that
// survive escaping whatever they hold.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  labelKey,
  parsePrometheus,
  samplesOf,
  seriesOf,
  type Labels,
} from "../../test/helpers/prometheus.ts";
import { bucketOf } from "../resilience/latency.ts";
import { codeOf, EdgeAccumulator, HISTOGRAM_BOUNDS_MS, type Edge } from "./metrics.ts";
import { MetricsStore, type TotalsReading } from "./metrics-store.ts";
import {
  escapeLabelValue,
  EXPOSED_BOUNDS_MS,
  EXPOSED_BUCKETS,
  PROMETHEUS_CONTENT_TYPE,
  renderPrometheus,
  splitCode,
} from "./prometheus.ts";
import type { CallFacts } from "./data-point.ts";

const NOW = Date.UTC(2026, 11, 7, 12, 0, 0);

/** A call on an edge, as the router's accumulator counts it. */
function call(
  edge: Edge,
  status: number,
  latencyMs: number,
  meshError?: string,
): { facts: CallFacts; code: string } {
  return {
    facts: {
      ...edge,
      method: "GET",
      outcome: meshError ?? "backend",
      status,
      colo: "-",
      traceId: "0".repeat(32),
      latencyMs,
      upstreamLatencyMs: latencyMs,
      attempts: 1,
      bytes: 10,
    },
    code: codeOf(status, meshError),
  };
}

/** The totals a metrics object holds after these calls (through the real accumulator and store). */
function totalsOf(
  destination: string,
  calls: ReturnType<typeof call>[],
  breakers: { backend: string; state: "closed" | "open" | "half-open" }[] = [],
): TotalsReading {
  const accumulator = new EdgeAccumulator();
  for (const { facts, code } of calls) accumulator.add(facts, code, NOW);
  const store = new MetricsStore(destination);
  store.record(
    {
      destination,
      edges: accumulator.take(),
      breakers: breakers.map((b) => ({ ...b, openUntil: b.state === "open" ? NOW + 5000 : null })),
      denials: [],
    },
    NOW,
  );
  return store.totalsReading();
}

const CANARY: Edge = {
  caller: "frontend",
  destination: "payments",
  backend: "payments-v2",
  route: "payments/canary",
};
const STABLE: Edge = { ...CANARY, backend: "payments-v1", route: "payments/0" };

const EDGE_LABELS = (edge: Edge): Labels => ({
  source_workload: edge.caller,
  destination_service: edge.destination,
  destination_workload: edge.backend,
  route: edge.route,
});

describe("renderPrometheus", () => {
  const latencies = [0.4, 1, 1.1, 3, 5, 7.5, 12, 48, 51, 230, 999, 4000, 250_000];
  const text = renderPrometheus(
    [
      totalsOf(
        "payments",
        [
          ...latencies.map((ms) => call(CANARY, 200, ms)),
          call(CANARY, 503, 2, "circuit_open"),
          call(CANARY, 503, 2, "circuit_open"),
          call(CANARY, 502, 30),
          call(STABLE, 200, 8),
        ],
        [
          { backend: "payments-v2", state: "open" },
          { backend: "payments-v1", state: "closed" },
        ],
      ),
    ],
    { configVersion: 42 },
  );
  const families = parsePrometheus(text);

  it("declares every family with HELP and TYPE, in a fixed order", () => {
    expect([...families.values()].map((f) => [f.name, f.type])).toEqual([
      ["meshwork_requests_total", "counter"],
      ["meshwork_request_duration_milliseconds", "histogram"],
      ["meshwork_circuit_breaker_state", "gauge"],
      ["meshwork_config_version", "gauge"],
    ]);
    for (const family of families.values()) expect(family.help).not.toBe("");
    expect(PROMETHEUS_CONTENT_TYPE).toBe("text/plain; version=0.0.4; charset=utf-8");
  });

  it("counts requests per edge, status and mesh error code, as Istio labels them", () => {
    const byLabels = new Map(
      samplesOf(families, "meshwork_requests_total").map((s) => [labelKey(s.labels), s.value]),
    );
    const at = (edge: Edge, code: string, flags: string) =>
      byLabels.get(labelKey({ ...EDGE_LABELS(edge), response_code: code, response_flags: flags }));
    expect(at(CANARY, "200", "-")).toBe(latencies.length);
    expect(at(CANARY, "503", "circuit_open")).toBe(2);
    expect(at(CANARY, "502", "-")).toBe(1);
    expect(at(STABLE, "200", "-")).toBe(1);
    expect(byLabels.size).toBe(4);
  });

  it("has cumulative buckets that are exact at every exposed bound, +Inf equal to _count", () => {
    const series = seriesOf(families, "meshwork_request_duration_milliseconds");
    expect(series.map((s) => s.labels)).toEqual([EDGE_LABELS(STABLE), EDGE_LABELS(CANARY)]);
    const canary = series[1]!;
    const all = [...latencies, 2, 2, 30];
    expect(canary.count).toBe(all.length);
    expect(canary.sum).toBeCloseTo(
      all.reduce((a, b) => a + b, 0),
      6,
    );
    expect(canary.buckets.map(([le]) => le)).toEqual([...EXPOSED_BOUNDS_MS, Infinity]);
    for (const [le, count] of canary.buckets) {
      // What the fine buckets say lies at or below `le`: exactly the calls that took ≤ le ms.
      expect(count, `le=${le}`).toBe(all.filter((ms) => ms <= le).length);
    }
    expect(canary.buckets.at(-1)![1]).toBe(canary.count);
  });

  it("exposes readable bounds that are bounds of the fine buckets", () => {
    expect(EXPOSED_BOUNDS_MS).toEqual([
      1, 2, 5.01, 10, 19.95, 50.12, 100, 199.53, 501.19, 1000, 1995.26, 5011.87, 10000, 19952.62,
      50118.72, 100000,
    ]);
    for (const index of EXPOSED_BUCKETS) {
      expect(bucketOf(HISTOGRAM_BOUNDS_MS[index]!)).toBe(index);
    }
  });

  it("shows each breaker as a state set: 1 for its state, 0 for the others", () => {
    const samples = samplesOf(families, "meshwork_circuit_breaker_state");
    expect(samples.map((s) => [s.labels.destination_workload, s.labels.state, s.value])).toEqual([
      ["payments-v1", "closed", 1],
      ["payments-v1", "open", 0],
      ["payments-v1", "half-open", 0],
      ["payments-v2", "closed", 0],
      ["payments-v2", "open", 1],
      ["payments-v2", "half-open", 0],
    ]);
  });

  it("keeps a backend's latest breaker report when several destinations saw it", () => {
    const older = totalsOf("a", [], [{ backend: "shared", state: "open" }]);
    const newer = totalsOf("b", [], [{ backend: "shared", state: "closed" }]);
    const later = {
      ...newer,
      breakers: newer.breakers.map((b) => ({ ...b, reportedAt: b.reportedAt + 1000 })),
    };
    for (const order of [
      [older, later],
      [later, older],
    ]) {
      const samples = samplesOf(
        parsePrometheus(renderPrometheus(order, { configVersion: 1 })),
        "meshwork_circuit_breaker_state",
      );
      expect(samples.filter((s) => s.value === 1).map((s) => s.labels.state)).toEqual(["closed"]);
    }
  });

  it("sums an edge that two readings both hold into one series", () => {
    const one = totalsOf("payments", [call(CANARY, 200, 3)]);
    const two = totalsOf("payments", [call(CANARY, 200, 3), call(CANARY, 200, 70)]);
    const families = parsePrometheus(renderPrometheus([one, two], { configVersion: 1 }));
    expect(samplesOf(families, "meshwork_requests_total").map((s) => s.value)).toEqual([3]);
    expect(seriesOf(families, "meshwork_request_duration_milliseconds")[0]!.count).toBe(3);
  });

  it("gives the config version, and no sample before there is one", () => {
    expect(samplesOf(families, "meshwork_config_version")).toEqual([{ labels: {}, value: 42 }]);
    const empty = parsePrometheus(renderPrometheus([], { configVersion: null }));
    expect([...empty.keys()]).toHaveLength(4);
    expect(samplesOf(empty, "meshwork_config_version")).toEqual([]);
    expect(samplesOf(empty, "meshwork_requests_total")).toEqual([]);
    expect(seriesOf(empty, "meshwork_request_duration_milliseconds")).toEqual([]);
  });

  it("splits a counted code into response_code and response_flags", () => {
    expect(splitCode("200")).toEqual({ responseCode: "200", responseFlags: "-" });
    expect(splitCode("503 circuit_open")).toEqual({
      responseCode: "503",
      responseFlags: "circuit_open",
    });
  });

  it("escapes backslash, double quote and newline in label values, and nothing else", () => {
    expect(escapeLabelValue('a\\b"c\nd é 🚀')).toBe('a\\\\b\\"c\\nd é 🚀');
  });

  it("round-trips any label value through the parser", () => {
    // Names as the config allows are DNS-like; the exposition must not depend on it.
    const value = fc.string({ unit: "binary", maxLength: 30 });
    fc.assert(
      fc.property(value, value, value, (caller, backend, route) => {
        const edge = { caller, destination: "d", backend, route };
        const families = parsePrometheus(
          renderPrometheus([totalsOf("d", [call(edge, 200, 4)])], { configVersion: 1 }),
        );
        const [sample] = samplesOf(families, "meshwork_requests_total");
        expect(sample!.labels).toEqual({
          ...EDGE_LABELS(edge),
          response_code: "200",
          response_flags: "-",
        });
        const [series] = seriesOf(families, "meshwork_request_duration_milliseconds");
        expect(series!.labels).toEqual(EDGE_LABELS(edge));
      }),
      { numRuns: 200 },
    );
    const tricky = { caller: 'say "hi"', destination: "d", backend: "C:\\dir\\", route: "a\nb" };
    const text = renderPrometheus([totalsOf("d", [call(tricky, 200, 4)])], { configVersion: 1 });
    expect(text).toContain(
      'source_workload="say \\"hi\\"",destination_service="d",destination_workload="C:\\\\dir\\\\",route="a\\nb"',
    );
  });
});

describe("parsePrometheus (the test helper) refuses what a scraper would", () => {
  const base = [
    "# HELP m_total a counter",
    "# TYPE m_total counter",
    'm_total{a="1"} 1',
    "# HELP h a histogram",
    "# TYPE h histogram",
  ];
  const histogram = (lines: string[]) => [...base, ...lines, ""].join("\n");
  const good = histogram([
    'h_bucket{a="x",le="1"} 1',
    'h_bucket{a="x",le="+Inf"} 2',
    'h_sum{a="x"} 3',
    'h_count{a="x"} 2',
    'h_bucket{a="y",le="1"} 0',
    'h_bucket{a="y",le="+Inf"} 5',
    'h_sum{a="y"} 9',
    'h_count{a="y"} 5',
  ]);

  it("reads a good exposition, labelled histogram series kept apart", () => {
    const families = parsePrometheus(good);
    expect(seriesOf(families, "h").map((s) => [s.labels, s.count])).toEqual([
      [{ a: "x" }, 2],
      [{ a: "y" }, 5],
    ]);
  });

  it.each([
    ["+Inf not equal to _count", good.replace('h_count{a="y"} 5', 'h_count{a="y"} 6'), /_count/],
    [
      "falling buckets",
      good.replace('h_bucket{a="x",le="+Inf"} 2', 'h_bucket{a="x",le="+Inf"} 0'),
      /fewer/,
    ],
    ["no +Inf", good.replace('h_bucket{a="x",le="+Inf"} 2\n', ""), /\+Inf/],
    [
      "bounds out of order",
      good.replace(
        'h_bucket{a="x",le="1"} 1',
        'h_bucket{a="x",le="5"} 1\nh_bucket{a="x",le="1"} 1',
      ),
      /increase/,
    ],
    [
      "a repeated series",
      good.replace('m_total{a="1"} 1', 'm_total{a="1"} 1\nm_total{a="1"} 2'),
      /repeat/,
    ],
    ["a family split in two", `${good}# HELP m_total x\n`, /after its samples|second HELP/],
    ["a sample before its TYPE", `x 1\n${good}`, /no TYPE/],
    ["a negative counter", good.replace('m_total{a="1"} 1', 'm_total{a="1"} -1'), /≥ 0/],
    ["a bad label name", good.replace('m_total{a="1"}', 'm_total{1a="1"}'), /label name|invalid/i],
    ["no final newline", good.trimEnd(), /end with/],
    ["CRLF line ends", good.replace(/\n/g, "\r\n"), /line ends/],
  ])("%s", (_, text, error) => {
    expect(() => parsePrometheus(text)).toThrow(error);
  });
});
