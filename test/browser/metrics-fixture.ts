// A `GET /v1/metrics` answer with known numbers, built the way the policy Worker builds one
// (buildMetricsView over metrics objects' readings), for the browser test to hand the dashboard
// instead of the mesh's own: every edge health, breaker state and split it must draw, exactly.
import { Tally } from "../../core/observability/metrics.ts";
import type { WindowReading } from "../../core/observability/metrics-store.ts";
import { SLOT_MS, slotOf } from "../../core/observability/metrics.ts";
import { buildMetricsView, type MetricsView } from "../../core/observability/view.ts";

export const WINDOW_SECONDS = 60;

interface EdgeSpec {
  caller: string;
  destination: string;
  backend: string;
  route: string;
  calls: number;
  failures: number;
  /** Latency of every call (ms). */
  latencyMs: number;
}

/** What the fixture holds, for the test to check against. */
export const FIXTURE_EDGES: readonly EdgeSpec[] = [
  // green: 100% success
  {
    caller: "orders",
    destination: "payments",
    backend: "payments-v1",
    route: "payments/0",
    calls: 270,
    failures: 0,
    latencyMs: 12,
  },
  // red: 28 of 30 (93.3%)
  {
    caller: "orders",
    destination: "payments",
    backend: "payments-v2",
    route: "payments/0",
    calls: 30,
    failures: 2,
    latencyMs: 40,
  },
  // amber: 117 of 120 (97.5%)
  {
    caller: "unknown",
    destination: "echo",
    backend: "echo-v1",
    route: "echo/1",
    calls: 120,
    failures: 3,
    latencyMs: 3,
  },
];

function counts(spec: EdgeSpec) {
  const tally = new Tally();
  for (let i = 0; i < spec.calls; i++) {
    const status = i < spec.failures ? 503 : 200;
    tally.addCall(status, String(status), spec.latencyMs, 1, 100);
  }
  return tally.toCounts();
}

/** The view, as of `now`. */
export function fixtureView(now: number): MetricsView {
  const edgesOf = (destination: string) =>
    FIXTURE_EDGES.filter((e) => e.destination === destination).map((spec) => ({
      edge: {
        caller: spec.caller,
        destination: spec.destination,
        backend: spec.backend,
        route: spec.route,
      },
      counts: counts(spec),
    }));
  const first = slotOf(now) - (WINDOW_SECONDS * 1000 - SLOT_MS);
  const series = (perSlot: number, failures: number): [number, number, number][] =>
    Array.from({ length: WINDOW_SECONDS / 10 }, (_, i) => [first + i * SLOT_MS, perSlot, failures]);
  const readings: WindowReading[] = [
    {
      destination: "payments",
      seconds: WINDOW_SECONDS,
      edges: edgesOf("payments"),
      series: series(50, 0),
      breakers: [
        { backend: "payments-v1", state: "closed", openUntil: null, reportedAt: now - 2_000 },
        { backend: "payments-v2", state: "half-open", openUntil: null, reportedAt: now - 1_000 },
      ],
      denials: [
        {
          at: now - 5_000,
          caller: "reports",
          destination: "payments",
          code: "forbidden",
          reason: "no ALLOW policy of payments matches spiffe://meshwork.local/reports",
          requestId: "fixture-request-1",
        },
      ],
    },
    {
      destination: "echo",
      seconds: WINDOW_SECONDS,
      edges: edgesOf("echo"),
      series: series(20, 1),
      breakers: [
        { backend: "echo-v3", state: "open", openUntil: now + 4_000, reportedAt: now - 500 },
      ],
      denials: [],
    },
  ];
  return buildMetricsView({
    source: "metrics-objects",
    windowMs: WINDOW_SECONDS * 1000,
    now,
    readings,
    splits: [
      {
        destination: "payments",
        route: "payments/0",
        weights: new Map([
          ["payments-v1", 90],
          ["payments-v2", 10],
        ]),
      },
      {
        destination: "echo",
        route: "echo/1",
        weights: new Map([
          ["echo-v1", 1],
          ["echo-v2", 1],
        ]),
      },
    ],
  });
}
