// The shared half of the resilience state: each isolate reports what it saw of a Service — its
// breaker's outcomes, the retries sent against its budget, tries' latency, demand on its rate
// limits — to the Service's Durable Object (BackendState) in batches through waitUntil, at most
// about once a second, and adopts the mesh-wide state it answers. A request never waits for the
// object, and an object that fails or hangs changes nothing but what /.mesh/status says. Two
// routers here are two isolates: each has a KV binding of its own, so a router state of its own,
// and they share the BackendState namespace.
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { service } from "./helpers/mesh.ts";
import { backendPolicy, eventually, isolatedRouter, uniqueName } from "./helpers/router.ts";

const BREAKER = {
  circuitBreaker: { consecutiveFailures: 5, baseOpenTime: "5s", maxOpenTime: "5s", openJitter: 0 },
};

/** Resources for a Service of its own (named `name`), with `spec` as its BackendPolicy. */
const serviceWith = (name: string, spec: object) => [
  service(name, "ECHO_V1"),
  backendPolicy(`${name}-policy`, [name], spec),
];

const objectOf = (name: string) => env.BACKEND_STATE.getByName(name);

describe("the circuit breaker, shared", () => {
  it("sees a 5xx storm and opens the mesh-wide breaker within its threshold", async () => {
    const name = uniqueName("shared");
    const router = isolatedRouter(serviceWith(name, BREAKER));
    const headers = { "x-echo-status": "503" };
    for (let i = 0; i < 5; i++)
      expect((await router.call(name, "/", { headers })).status).toBe(503);
    const view = await eventually(
      () => objectOf(name).view(),
      (v) => v.breaker?.kind === "open",
    );
    expect(view.breaker).toMatchObject({ kind: "open", trips: 1 });
  });

  it("hands its state to an isolate that has seen no failure, which then refuses the backend", async () => {
    const name = uniqueName("shared");
    const first = isolatedRouter(serviceWith(name, BREAKER));
    for (let i = 0; i < 5; i++)
      await first.call(name, "/", { headers: { "x-echo-status": "500" } });
    await eventually(
      () => objectOf(name).view(),
      (v) => v.breaker?.kind === "open",
    );
    const second = isolatedRouter(serviceWith(name, BREAKER));
    // Its first call goes through (it knows nothing yet) and its report brings the state back.
    expect((await second.call(name)).error).toBeNull();
    const refused = await eventually(
      async () => (await second.call(name)).error,
      (error) => error === "circuit_open",
    );
    expect(refused).toBe("circuit_open");
  });

  it("gets at most about one report per isolate per second", { timeout: 15_000 }, async () => {
    const name = uniqueName("shared");
    const router = isolatedRouter(serviceWith(name, BREAKER));
    // 100 calls, one every 20 ms: about two seconds of steady news.
    for (let i = 0; i < 100; i++) {
      await router.call(name);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const { backendSync } = await eventually(router.status, (s) => s.backendSync.reports >= 2);
    // A report at once, then one a second: 3 over about 2 s (4 at the edges), not 100.
    expect(backendSync.reports).toBeGreaterThanOrEqual(2);
    expect(backendSync.reports).toBeLessThanOrEqual(4);
  });
});

describe("the retry budget, shared", () => {
  it("holds mesh-wide under a total outage: a second isolate spends only what the first left", async () => {
    const name = uniqueName("budget");
    const spec = {
      retry: { attempts: 2, backoff: "1ms" },
      retryBudget: { ratio: 0.2, minPerSecond: 2, window: "10s" },
    };
    const key = crypto.randomUUID();
    const outage = { "x-echo-key": key, "x-echo-status": "503" };
    const send = async (router: ReturnType<typeof isolatedRouter>) => {
      const answer = await router.call(name, "/", { headers: outage });
      expect(answer.status).toBe(503);
      return answer.outcome.attempts.length - 1;
    };
    // The first isolate: 100 calls, 0.2 × 100 + 2/s × 10 s = 40 retries allowed.
    const first = isolatedRouter(serviceWith(name, spec));
    let retries = 0;
    for (let i = 0; i < 100; i++) retries += await send(first);
    expect(retries).toBe(40);
    await eventually(
      () => objectOf(name).view(),
      (v) => (v.budget?.retries ?? 0) >= 40,
    );
    // The second isolate: one call, then it knows the mesh's counts.
    const second = isolatedRouter(serviceWith(name, spec));
    let secondRetries = await send(second);
    await eventually(second.status, (s) => (s.retryBudgets[name]?.requests ?? 0) >= 101);
    for (let i = 0; i < 99; i++) secondRetries += await send(second);
    // Mesh-wide: 200 calls allow 0.2 × 200 + 20 = 60 retries, and the first spent 40. Alone, the
    // second would have spent 40 too (80 in all): the budget is the mesh's, not the isolate's.
    const total = retries + secondRetries;
    expect(total).toBeLessThanOrEqual(60 + 2);
    expect(secondRetries).toBeLessThan(40);
    const amplification = (200 + total) / 200;
    expect(amplification).toBeLessThanOrEqual(1 + 0.2 + 20 / 200 + 0.01);
  });
});

describe("rate limits and latency, shared", () => {
  it("gives an isolate only its share of a rate limit once the object knows the mesh's demand", async () => {
    const name = uniqueName("limit");
    const spec = { rateLimit: { total: { requestsPerSecond: 20, burst: 5 } } };
    const busy = isolatedRouter(serviceWith(name, spec));
    for (let i = 0; i < 30; i++) await busy.call(name);
    await eventually(
      () => objectOf(name).view(),
      (v) => (v.limits?.total ?? 0) >= 30,
    );
    const quiet = isolatedRouter(serviceWith(name, spec));
    expect((await quiet.call(name)).status).toBe(200);
    const status = await eventually(
      quiet.status,
      (s) => (s.rateLimits[name]?.total?.share ?? 1) < 1,
    );
    expect(status.rateLimits[name]!.total!.share).toBeLessThan(0.1);
    // Alone it would let 4 more through at once (a burst of 5); with its share, at most one.
    let admitted = 0;
    for (let i = 0; i < 5; i++) if ((await quiet.call(name)).status === 200) admitted++;
    expect(admitted).toBeLessThanOrEqual(1);
  });

  it("learns latency from every isolate: a fresh one reads the mesh's estimate", async () => {
    const name = uniqueName("latency");
    const spec = { timeouts: { backendRequest: "auto", auto: { minSamples: 10 } } };
    const first = isolatedRouter(serviceWith(name, spec));
    for (let i = 0; i < 20; i++) await first.call(name);
    await eventually(
      () => objectOf(name).view(),
      (v) => (v.latency ?? []).reduce((sum, [, n]) => sum + (n ?? 0), 0) >= 20,
    );
    const second = isolatedRouter(serviceWith(name, spec));
    await second.call(name);
    const status = await eventually(
      second.status,
      (s) => (s.latency[name]?.meshSamples ?? 0) >= 20,
    );
    expect(status.latency[name]!.samples).toBe(1);
    expect(status.latency[name]!.meshSamples).toBeGreaterThanOrEqual(20);
  });
});

describe("when the object cannot be reached", () => {
  const EVERYTHING = {
    ...BREAKER,
    retry: { attempts: 1, backoff: "1ms" },
    timeouts: { backendRequest: "auto" },
    rateLimit: { total: { requestsPerSecond: 1000 } },
  };

  it("never holds a request up: an object that never answers changes no response", async () => {
    const hanging = { getByName: () => ({ report: () => new Promise(() => {}) }) };
    const name = uniqueName("hanging");
    const router = isolatedRouter(serviceWith(name, EVERYTHING), { backendState: hanging });
    const started = Date.now();
    const headers = { "x-echo-status": "500" };
    for (let i = 0; i < 5; i++)
      expect((await router.call(name, "/", { headers })).status).toBe(500);
    expect((await router.call(name)).error).toBe("circuit_open"); // tripped locally, at once
    expect(Date.now() - started).toBeLessThan(2000);
    expect((await router.status()).breakers[name]?.state).toBe("open");
  });

  it("keeps the local state and says so in status when the object fails", async () => {
    const failing = {
      getByName: () => ({ report: () => Promise.reject(new Error("object unreachable")) }),
    };
    const name = uniqueName("failing");
    const router = isolatedRouter(serviceWith(name, EVERYTHING), { backendState: failing });
    for (let i = 0; i < 5; i++)
      await router.call(name, "/", { headers: { "x-echo-status": "500" } });
    expect((await router.call(name)).error).toBe("circuit_open");
    const s = await eventually(router.status, (v) => v.backendSync.lastError !== null);
    expect(s.backendSync.lastError?.message).toMatch(/object unreachable/);
    expect(s.breakers[name]?.state).toBe("open");
  });
});
