// Telemetry: one Analytics Engine data point per call, with the documented columns, for a
// success and for each error code the mesh produces; none of it (nor the metrics flush) holds
// up the answer; the metrics flushes count every call exactly and leave an isolate at most once
// a second.
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import {
  BLOB_COLUMNS,
  DOUBLE_COLUMNS,
  type AnalyticsDataPoint,
} from "../core/observability/data-point.ts";
import type { MetricsReport } from "../core/observability/metrics.ts";
import { handleMeshCall } from "../workers/router/app.ts";
import { httpRoute, service } from "./helpers/mesh.ts";
import {
  backendPolicy,
  isolatedRouter,
  sleep,
  uniqueName,
  type IsolatedRouter,
} from "./helpers/router.ts";

/** An Analytics Engine binding that keeps what it is given. */
function recordingDataset() {
  const points: AnalyticsDataPoint[] = [];
  return { points, binding: { writeDataPoint: (point: AnalyticsDataPoint) => points.push(point) } };
}

/** A data point as named columns. */
function columns(point: AnalyticsDataPoint) {
  const named: Record<string, string | number> = { index: point.indexes[0] };
  BLOB_COLUMNS.forEach((name, i) => (named[name] = point.blobs[i]!));
  DOUBLE_COLUMNS.forEach((name, i) => (named[name] = point.doubles[i]!));
  return named;
}

/** A POLICY binding whose metrics flushes are kept (or never answered). */
function recordingPolicy({ hang = false } = {}) {
  const reports: { at: number; report: MetricsReport }[] = [];
  return {
    reports,
    binding: {
      report: async () => ({ ok: true }),
      metrics: (report: MetricsReport) => {
        reports.push({ at: Date.now(), report: structuredClone(report) });
        return hang ? new Promise(() => {}) : Promise.resolve({ ok: true });
      },
    },
  };
}

const QUIET = { ACCESS_LOG_SAMPLE: "0" };

describe("Analytics Engine: one data point per call", () => {
  const name = uniqueName("ae");
  const missing = uniqueName("ae-missing");
  const dataset = recordingDataset();
  const router = isolatedRouter(
    [
      service(name, "ECHO_V1"),
      service(`${name}-dead`, "ECHO_V1"),
      {
        apiVersion: "meshwork.dev/v1",
        kind: "Service",
        metadata: { name: `${name}-unreachable` },
        spec: { endpoints: [{ url: "http://127.0.0.1:9/" }] },
      },
      httpRoute(name, name, [
        {
          name: "only",
          matches: [{ path: { type: "PathPrefix", value: "/ok" } }],
          backendRefs: [{ name }],
        },
        {
          name: "nowhere",
          matches: [{ path: { type: "PathPrefix", value: "/nowhere" } }],
          backendRefs: [{ name: missing }],
        },
        {
          name: "slow",
          matches: [{ path: { type: "PathPrefix", value: "/slow" } }],
          backendRefs: [{ name }],
          timeouts: { request: "50ms" },
        },
        {
          name: "dead",
          matches: [{ path: { type: "PathPrefix", value: "/dead" } }],
          backendRefs: [{ name: `${name}-dead` }],
        },
        {
          name: "gone",
          matches: [{ path: { type: "PathPrefix", value: "/unreachable" } }],
          backendRefs: [{ name: `${name}-unreachable` }],
        },
      ]),
      backendPolicy("dead-breaker", [`${name}-dead`], {
        circuitBreaker: {
          consecutiveFailures: 1,
          baseOpenTime: "60s",
          maxOpenTime: "60s",
          openJitter: 0,
        },
      }),
    ],
    { backendState: undefined, vars: QUIET, bindings: { MESH_ANALYTICS: dataset.binding } },
  );

  async function pointOf(call: () => Promise<unknown>) {
    const before = dataset.points.length;
    await call();
    expect(dataset.points.length - before, "data points written by one call").toBe(1);
    return columns(dataset.points.at(-1)!);
  }

  it("a success: every column as documented", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const point = await pointOf(() =>
      router.call(
        name,
        "/ok/x?q=1",
        {
          method: "POST",
          body: "hello",
          headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
        },
        "orders",
      ),
    );
    expect(point).toMatchObject({
      index: name,
      caller: "orders",
      destination: name,
      backend: name,
      route: `${name}/only`,
      method: "POST",
      outcome: "backend",
      status_class: "2xx",
      colo: "-",
      trace_id: traceId,
      attempts: 1,
      status: 200,
    });
    expect(point.latency_ms).toBeGreaterThanOrEqual(point.upstream_latency_ms as number);
    expect(point.bytes).toBeGreaterThanOrEqual(0);
  });

  it("a backend's own 5xx is the backend's outcome, in class 5xx; an unknown caller is `unknown`", async () => {
    const point = await pointOf(() =>
      router.call(name, "/ok", { headers: { "x-echo-status": "503" } }),
    );
    expect(point).toMatchObject({
      caller: "unknown",
      outcome: "backend",
      status: 503,
      status_class: "5xx",
    });
  });

  const cases: [string, number, () => Promise<unknown>][] = [
    ["bad_request", 400, () => router.call(name, "/ok/a%2Fb")],
    ["no_route", 404, () => router.call(name, "/elsewhere")],
    ["no_backend", 500, () => router.call(name, "/nowhere")],
    [
      "upstream_timeout",
      504,
      () => router.call(name, "/slow", { headers: { "x-echo-delay-ms": "1000" } }),
    ],
    ["upstream_error", 502, () => router.call(name, "/unreachable")],
    [
      "circuit_open",
      503,
      async () => {
        await router.call(name, "/dead", { headers: { "x-echo-status": "500" } });
        dataset.points.pop(); // the tripping call's own point (checked above)
        return router.call(name, "/dead");
      },
    ],
  ];
  for (const [code, status, call] of cases) {
    it(`${code} (${status}): the mesh's code as the outcome`, async () => {
      const point = await pointOf(call);
      // A request whose URL the mesh cannot take is refused before its destination is read.
      const destination = code === "bad_request" ? "-" : name;
      expect(point).toMatchObject({ index: destination, destination, outcome: code, status });
      expect(point.status_class).toBe(`${Math.floor(status / 100)}xx`);
    });
  }

  it("internal_error (500): a bug inside the router still gets its point", async () => {
    const ctx = createExecutionContext();
    const before = dataset.points.length;
    const response = await handleMeshCall(new Request(`http://${name}/ok`), router.env, ctx, {
      random: () => {
        throw new TypeError("boom");
      },
    });
    await waitOnExecutionContext(ctx);
    expect(response.status).toBe(500);
    expect(dataset.points.length - before).toBe(1);
    expect(columns(dataset.points.at(-1)!)).toMatchObject({
      outcome: "internal_error",
      status: 500,
    });
  });
});

describe("Analytics Engine: identity refusals and limits", () => {
  it("unauthenticated, forbidden, rate_limited and no_healthy_backend each get one point", async () => {
    const name = uniqueName("ae-zt");
    const dataset = recordingDataset();
    const a = `${name}-a`;
    const b = `${name}-b`;
    const zeroTrust = isolatedRouter([service(name, "ECHO_V1")], {
      backendState: undefined,
      zeroTrust: true,
      vars: QUIET,
      bindings: { MESH_ANALYTICS: dataset.binding },
    });
    await zeroTrust.call(name, "/");
    await zeroTrust.call(name, "/", {}, "orders");
    const limited = isolatedRouter(
      [
        service(name, "ECHO_V1"),
        service(a, "ECHO_V1"),
        service(b, "ECHO_V2"),
        httpRoute(name, name, [
          { matches: [{ headers: [{ name: "x-to", value: "a" }] }], backendRefs: [{ name: a }] },
          { matches: [{ headers: [{ name: "x-to", value: "b" }] }], backendRefs: [{ name: b }] },
          { backendRefs: [{ name: a }, { name: b }] },
        ]),
        backendPolicy("limit", [name], {
          rateLimit: { total: { requestsPerSecond: 0.1, burst: 4 } },
        }),
        backendPolicy("breakers", [a, b], {
          circuitBreaker: {
            consecutiveFailures: 1,
            baseOpenTime: "60s",
            maxOpenTime: "60s",
            openJitter: 0,
          },
        }),
      ],
      { backendState: undefined, vars: QUIET, bindings: { MESH_ANALYTICS: dataset.binding } },
    );
    await limited.call(name, "/", { headers: { "x-to": "a", "x-echo-status": "500" } });
    await limited.call(name, "/", { headers: { "x-to": "b", "x-echo-status": "500" } });
    await limited.call(name, "/"); // both open
    await limited.call(name, "/"); // the fourth call: the burst of 4 is spent
    await limited.call(name, "/");
    const outcomes = dataset.points.map((p) => columns(p).outcome);
    expect(outcomes).toEqual([
      "unauthenticated",
      "forbidden",
      "backend",
      "backend",
      "no_healthy_backend",
      "no_healthy_backend",
      "rate_limited",
    ]);
    expect(columns(dataset.points[1]!)).toMatchObject({ caller: "orders", status: 403 });
  });
});

describe("nothing waits for telemetry", () => {
  it("answers while the policy Worker never takes the flush, with the point already written", async () => {
    const name = uniqueName("ae-fast");
    const dataset = recordingDataset();
    const policy = recordingPolicy({ hang: true });
    const router = isolatedRouter([service(name, "ECHO_V1")], {
      backendState: undefined,
      policy: policy.binding,
      vars: { ...QUIET, METRICS_FLUSH: "on" },
      bindings: { MESH_ANALYTICS: dataset.binding },
    });
    const answered = await router.call(name);
    expect(answered.status).toBe(200);
    expect(dataset.points).toHaveLength(1);
    // The flush goes out from waitUntil, after the answer, and still hangs.
    await eventuallyReported(policy.reports, 1);
  });

  it("a dataset that throws costs the call nothing", async () => {
    const name = uniqueName("ae-throws");
    const router = isolatedRouter([service(name, "ECHO_V1")], {
      backendState: undefined,
      vars: QUIET,
      bindings: {
        MESH_ANALYTICS: {
          writeDataPoint() {
            throw new Error("Analytics Engine is down");
          },
        },
      },
    });
    expect((await router.call(name)).status).toBe(200);
  });
});

async function eventuallyReported(reports: unknown[], n: number) {
  for (let i = 0; i < 50 && reports.length < n; i++) await sleep(50);
  expect(reports.length).toBeGreaterThanOrEqual(n);
}

describe("metrics flushes", () => {
  function meshWith(policy: ReturnType<typeof recordingPolicy>): {
    router: IsolatedRouter;
    name: string;
  } {
    const name = uniqueName("flush");
    const router = isolatedRouter(
      [
        service(name, "ECHO_V1"),
        service(`${name}-v2`, "ECHO_V2"),
        httpRoute(name, name, [
          {
            backendRefs: [
              { name, weight: 1 },
              { name: `${name}-v2`, weight: 1 },
            ],
          },
        ]),
      ],
      {
        backendState: undefined,
        policy: policy.binding,
        vars: { ...QUIET, METRICS_FLUSH: "on" },
        zeroTrust: false,
      },
    );
    return { router, name };
  }

  it("count every call exactly, per edge and code, and leave an isolate at most once a second", async () => {
    const policy = recordingPolicy();
    const { router, name } = meshWith(policy);
    const started = Date.now();
    let calls = 0;
    const backgrounds: Promise<void>[] = [];
    while (Date.now() - started < 2500) {
      const answer = await router.call(
        name,
        "/",
        calls % 5 === 0 ? { headers: { "x-echo-status": "500" } } : {},
        "orders",
      );
      backgrounds.push(answer.background());
      calls += 1;
      await sleep(5);
    }
    await Promise.all(backgrounds);
    const elapsed = Date.now() - started;
    // Bounded: one flush per second at most, and the first waits for none.
    expect(policy.reports.length).toBeGreaterThanOrEqual(2);
    expect(policy.reports.length).toBeLessThanOrEqual(Math.ceil(elapsed / 1000) + 1);
    for (let i = 1; i < policy.reports.length; i++) {
      // Workers' clock moves in steps; allow a few milliseconds of it.
      expect(policy.reports[i]!.at - policy.reports[i - 1]!.at).toBeGreaterThanOrEqual(990);
    }
    // Exact: every call once, under its edge, its code and its backend.
    const edges = policy.reports.flatMap((r) => r.report.destinations.flatMap((d) => d.edges));
    const total = edges.reduce((sum, e) => sum + e.requests, 0);
    expect(total).toBe(calls);
    const codes: Record<string, number> = {};
    for (const edge of edges) {
      expect(edge).toMatchObject({ caller: "orders", destination: name, route: `${name}/0` });
      for (const [code, n] of Object.entries(edge.codes)) codes[code] = (codes[code] ?? 0) + n;
    }
    expect(codes["500"]).toBe(Math.ceil(calls / 5));
    expect(codes["200"]).toBe(calls - Math.ceil(calls / 5));
    expect(new Set(edges.map((e) => e.backend))).toEqual(new Set([name, `${name}-v2`]));
    const failures = edges.reduce((sum, e) => sum + e.failures, 0);
    expect(failures).toBe(Math.ceil(calls / 5));
  });

  it("a denial is kept with its reason; METRICS_FLUSH=off sends nothing", async () => {
    const policy = recordingPolicy();
    const name = uniqueName("deny");
    const router = isolatedRouter([service(name, "ECHO_V1")], {
      backendState: undefined,
      policy: policy.binding,
      zeroTrust: true,
      vars: { ...QUIET, METRICS_FLUSH: "on" },
    });
    await (await router.call(name, "/", {}, "orders")).background();
    const denials = policy.reports.flatMap((r) => r.report.destinations.flatMap((d) => d.denials));
    expect(denials).toHaveLength(1);
    expect(denials[0]).toMatchObject({ caller: "orders", destination: name, code: "forbidden" });
    expect(denials[0]!.reason).not.toBe("");

    const off = recordingPolicy();
    const quiet = isolatedRouter([service(name, "ECHO_V1")], {
      backendState: undefined,
      policy: off.binding,
      vars: { ...QUIET, METRICS_FLUSH: "off" },
    });
    await (await quiet.call(name)).background();
    expect(off.reports).toHaveLength(0);
  });
});
