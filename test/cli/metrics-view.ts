// Metrics views for meshctl stat and top tests, made the way the policy Worker makes them: calls
// counted by the router's accumulator, added up by a metrics object's store, read over a window
// and turned into the GET /v1/metrics view by the core's own code — so the numbers the tests
// expect are the ones the real pipeline gives.
import { codeOf, EdgeAccumulator, SLOT_MS, type Edge } from "../../core/observability/metrics.ts";
import { MetricsStore } from "../../core/observability/metrics-store.ts";
import { buildMetricsView, type MetricsView } from "../../core/observability/view.ts";

/** The view's clock: a slot boundary, so a 60 s window's counts cover exactly 50 s. */
export const VIEW_NOW = Date.UTC(2026, 11, 7, 12, 0, 0);

/** `count` calls on an edge, each with this status, latency and mesh error code. */
export interface Calls extends Edge {
  count: number;
  status?: number;
  latencyMs?: number;
  meshError?: string;
}

/**
 * The view of these calls over `windowSeconds`, all made in the window's first slot (so their
 * rates are over windowSeconds - 10 s: 100 calls in a 60 s window are 2 per second).
 */
export function viewOf(calls: Calls[], windowSeconds = 60): MetricsView {
  const windowMs = windowSeconds * 1000;
  const at = VIEW_NOW - windowMs + SLOT_MS;
  const stores = new Map<string, MetricsStore>();
  const accumulator = new EdgeAccumulator();
  for (const call of calls) {
    const status = call.status ?? 200;
    for (let i = 0; i < call.count; i++) {
      accumulator.add(
        {
          ...call,
          method: "GET",
          outcome: call.meshError ?? "backend",
          status,
          colo: "-",
          traceId: "0".repeat(32),
          latencyMs: call.latencyMs ?? 5,
          upstreamLatencyMs: call.latencyMs ?? 5,
          attempts: 1,
          bytes: 0,
        },
        codeOf(status, call.meshError),
        at,
      );
    }
  }
  for (const sample of accumulator.take()) {
    let store = stores.get(sample.destination);
    if (!store) {
      store = new MetricsStore(sample.destination);
      stores.set(sample.destination, store);
    }
    store.record(
      { destination: sample.destination, edges: [sample], breakers: [], denials: [] },
      at,
    );
  }
  return buildMetricsView({
    source: "metrics-objects",
    windowMs,
    now: VIEW_NOW,
    readings: [...stores.values()].map((store) => store.window(windowMs, VIEW_NOW)),
    splits: [],
  });
}

/** An edge's four names, for a test's traffic. */
export const edge = (caller: string, destination: string, backend: string, route: string) => ({
  caller,
  destination,
  backend,
  route,
});
