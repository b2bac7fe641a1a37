// Which settings govern a call: the rule's own fields, then BackendPolicies on the rule, the
// route, the destination Service and the backend Service, then the defaults — each field from
// the first source that sets it. Built through validation and the published snapshot entry, as
// the router sees it.
import { describe, expect, it } from "vitest";
import { buildSnapshot, parseEntry } from "../config/snapshot.ts";
import { validateResources } from "../config/validate.ts";
import { compileRouteTable, type RouteTable } from "./route-table.ts";

const service = (name: string) => ({
  apiVersion: "meshwork.dev/v1",
  kind: "Service",
  metadata: { name },
  spec: { endpoints: [{ binding: "ECHO_V1" }] },
});

const policy = (name: string, target: object, spec: object, created?: string) => ({
  apiVersion: "meshwork.dev/v1",
  kind: "BackendPolicy",
  metadata: { name, ...(created ? { creationTimestamp: created } : {}) },
  spec: { targetRefs: [target], ...spec },
});

const onService = (name: string) => ({ kind: "Service", name });
const onRoute = (name: string, sectionName?: string) => ({
  group: "gateway.networking.k8s.io",
  kind: "HTTPRoute",
  name,
  ...(sectionName ? { sectionName } : {}),
});

/** The route table of `destination`, from its published snapshot entry. */
function tableOf(resources: object[], destination = "shop"): RouteTable {
  const valid = validateResources(resources);
  if (!valid.ok) throw new Error(JSON.stringify(valid.issues));
  const build = buildSnapshot(valid.value, 1, new Date(0));
  if (!build.ok) throw new Error(JSON.stringify(build.issues));
  const key = build.index.destinations[destination]!;
  const entry = parseEntry(JSON.parse(build.writes.find((w) => w.key === key)!.value), key);
  if (!entry.ok) throw new Error(JSON.stringify(entry.issues));
  return compileRouteTable(entry.value, { hasBinding: () => true });
}

const route = (rule: object) => ({
  apiVersion: "gateway.networking.k8s.io/v1",
  kind: "HTTPRoute",
  metadata: { name: "shop-route" },
  spec: {
    parentRefs: [{ name: "shop" }],
    rules: [{ name: "main", backendRefs: [{ name: "shop-v1" }], ...rule }],
  },
});

describe("call policy precedence", () => {
  const base = [service("shop"), service("shop-v1")];

  it("with no policy: no timeouts, no retries", () => {
    const b = tableOf([...base, route({})]).matches[0]!.rule.backends.items[0]!;
    expect(b.policy).toEqual({
      requestTimeoutMs: 0,
      backendTimeoutMs: 0,
      autoTimeout: undefined,
      retry: undefined,
    });
    expect(b.service!.policy.budget).toEqual({ ratio: 0.2, minPerSecond: 10, windowMs: 10_000 });
    expect(b.service!.policy.balancer.type).toBe("RoundRobin");
  });

  it("takes each field from the most specific source that sets it", () => {
    const t = tableOf([
      ...base,
      route({ timeouts: { request: "9s" } }),
      policy("backend", onService("shop-v1"), {
        timeouts: { request: "1s", backendRequest: "100ms" },
        retry: { attempts: 5, backoff: "1ms", nonIdempotent: true },
      }),
      policy("destination", onService("shop"), {
        timeouts: { backendRequest: "200ms" },
        retry: { attempts: 4 },
      }),
      policy("whole-route", onRoute("shop-route"), { retry: { attempts: 3, on: ["5xx"] } }),
      policy("one-rule", onRoute("shop-route", "main"), { retry: { codes: [429] } }),
    ]);
    const p = t.matches[0]!.rule.backends.items[0]!.policy;
    expect(p.requestTimeoutMs).toBe(9000); // the rule's own field
    expect(p.backendTimeoutMs).toBe(200); // the destination's, over the backend's
    expect(p.retry!.attempts).toBe(3); // the route's, over the destination's and backend's
    expect(p.retry!.codes.has(429) && p.retry!.codes.has(500)).toBe(true); // rule policy + route `on`
    expect(p.retry!.backoff.baseMs).toBe(1); // only the backend's says
    expect(p.retry!.nonIdempotent).toBe(true);
  });

  it("a rule's own retry codes replace the policies' statuses", () => {
    const t = tableOf([
      ...base,
      route({ retry: { attempts: 1, codes: [503] } }),
      policy("destination", onService("shop"), { retry: { on: ["5xx"], codes: [429] } }),
    ]);
    const retry = t.matches[0]!.rule.backends.items[0]!.policy.retry!;
    expect([...retry.codes]).toEqual([503]);
    expect(retry.attempts).toBe(1);
  });

  it("learns the per-try timeout with `auto`, defaults or the policy's knobs", () => {
    const learned = tableOf([
      ...base,
      policy("auto", onService("shop"), { timeouts: { backendRequest: "auto" } }),
    ]).defaultRule.backends.items[0]!.policy;
    expect(learned.autoTimeout).toEqual({
      quantile: 0.99,
      factor: 2,
      minMs: 100,
      maxMs: 10_000,
      minSamples: 100,
    });
    const tuned = tableOf([
      ...base,
      policy("auto", onService("shop"), {
        timeouts: {
          backendRequest: "auto",
          auto: { quantile: 0.9, factor: 3, min: "20ms", max: "2s", minSamples: 10 },
        },
      }),
    ]).defaultRule.backends.items[0]!.policy;
    expect(tuned.autoTimeout).toEqual({
      quantile: 0.9,
      factor: 3,
      minMs: 20,
      maxMs: 2000,
      minSamples: 10,
    });
  });

  it("merges several policies on one Service knob by knob, the oldest first", () => {
    const t = tableOf([
      ...base,
      policy(
        "breaker",
        onService("shop"),
        { circuitBreaker: { consecutiveFailures: 3 } },
        "2026-01-01T00:00:00Z",
      ),
      policy(
        "limits",
        onService("shop"),
        {
          circuitBreaker: { consecutiveFailures: 9 },
          rateLimit: { total: { requestsPerSecond: 50 } },
        },
        "2026-02-01T00:00:00Z",
      ),
    ]);
    const own = t.service.policy;
    expect(own.names).toEqual(["breaker", "limits"]);
    expect(own.breaker?.consecutiveFailures).toBe(3);
    expect(own.rateLimit?.total).toEqual({ ratePerSecond: 50, burst: 50 });
  });

  it("takes outlier detection from the rule's, route's or destination's policies", () => {
    const t = tableOf([
      ...base,
      route({}),
      policy("split", onRoute("shop-route"), {
        outlierDetection: { maxEjectionPercent: 50, failOpen: true },
      }),
    ]);
    expect(t.matches[0]!.rule.outlier).toEqual({ maxEjectionPercent: 50, failOpen: true });
    expect(tableOf([...base, route({})]).matches[0]!.rule.outlier).toEqual({
      maxEjectionPercent: 100,
      failOpen: false,
    });
  });

  it("carries a failover Service in the entry and compiles it as the backend's stand-in", () => {
    const t = tableOf([
      ...base,
      service("shop-dr"),
      route({}),
      policy("dr", onService("shop-v1"), { failover: { service: "shop-dr" } }),
      policy("dr-budget", onService("shop-dr"), { retry: { attempts: 1 } }),
    ]);
    const b = t.matches[0]!.rule.backends.items[0]!;
    expect(b.failover?.service?.name).toBe("shop-dr");
    expect(b.failover?.policy.retry?.attempts).toBe(1);
  });

  it("compiles rate limits: total, per caller, and named callers' overrides", () => {
    const t = tableOf([
      ...base,
      policy("limits", onService("shop"), {
        rateLimit: {
          total: { requestsPerSecond: 100, burst: 20 },
          perCaller: { requestsPerSecond: 0.5 },
          overrides: [{ callers: ["checkout", "cart"], requestsPerSecond: 40 }],
        },
      }),
    ]);
    const limit = t.service.policy.rateLimit!;
    expect(limit.total).toEqual({ ratePerSecond: 100, burst: 20 });
    expect(limit.perCaller).toEqual({ ratePerSecond: 0.5, burst: 1 });
    expect(limit.overrides.get("cart")).toEqual({ ratePerSecond: 40, burst: 40 });
  });
});
