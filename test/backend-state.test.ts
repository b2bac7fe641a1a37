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

  it(
    "grants half-open probes mesh-wide: of four isolates that know it is open, one probes",
    {
      timeout: 20_000,
    },
    async () => {
      const name = uniqueName("probes");
      const spec = {
        circuitBreaker: {
          consecutiveFailures: 5,
          baseOpenTime: "1s",
          maxOpenTime: "2s",
          openJitter: 0,
          halfOpenProbes: 1,
        },
      };
      const failing = { headers: { "x-echo-status": "500" } };
      const isolates = Array.from({ length: 4 }, () => isolatedRouter(serviceWith(name, spec)));
      for (let i = 0; i < 5; i++) await isolates[0]!.call(name, "/", failing);
      const opened = await eventually(
        () => objectOf(name).view(),
        (v) => v.breaker?.kind === "open",
      );
      // The other three learn it (their first call still goes through: they knew nothing).
      for (const isolate of isolates.slice(1)) {
        await isolate.call(name, "/", failing);
        await eventually(
          async () => (await isolate.call(name)).error,
          (error) => error === "circuit_open",
        );
      }
      // Past the open time, every isolate keeps calling a backend that still fails, for 1.5 s.
      const until = opened.breaker!.kind === "open" ? opened.breaker!.until : 0;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, until - Date.now())));
      let reached = 0;
      const phaseEnd = Date.now() + 1500;
      while (Date.now() < phaseEnd) {
        for (const isolate of isolates) {
          if ((await isolate.call(name, "/", failing)).status === 500) reached++;
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      // One probe, granted by the object, failed and reopened the breaker for every isolate; each
      // probing on its own clock would have sent four.
      expect(reached).toBe(1);
      const reopened = await objectOf(name).view();
      expect(reopened.breaker).toMatchObject({ kind: "open", trips: 2 });

      // Recovery: the backend answers again; after the second open time one probe closes the
      // object's breaker, and every isolate adopts that.
      const closed = await eventually(
        async () => {
          for (const isolate of isolates) await isolate.call(name);
          return objectOf(name).view();
        },
        (v) => v.breaker?.kind === "closed",
        8000,
      );
      expect(closed.breaker?.kind).toBe("closed");
      for (const isolate of isolates) {
        const answer = await eventually(
          () => isolate.call(name),
          (a) => a.status === 200,
        );
        expect(answer.status).toBe(200);
        expect((await isolate.status()).breakers[name]?.state).toBe("closed");
      }
    },
  );

  it(
    "receives, counted at the namespace, at most one report a second from each isolate, and none awaited",
    {
      timeout: 15_000,
    },
    async () => {
      const name = uniqueName("counted");
      /** The real namespace, counting each isolate's reports, when they start and end. */
      const counting = () => {
        const log: { at: number; done?: number }[] = [];
        return {
          log,
          namespace: {
            getByName: (object: string) => ({
              report: async (report: unknown) => {
                const entry: { at: number; done?: number } = { at: Date.now() };
                log.push(entry);
                const view = await env.BACKEND_STATE.getByName(object).report(report as never);
                entry.done = Date.now();
                return view;
              },
            }),
          },
        };
      };
      const a = counting();
      const b = counting();
      const routers = [a, b].map((c) =>
        isolatedRouter(serviceWith(name, BREAKER), { backendState: c.namespace }),
      );
      // 2 s of steady traffic from both isolates: a call every 20 ms each.
      const started = Date.now();
      let slowest = 0;
      while (Date.now() - started < 2000) {
        for (const router of routers) {
          const before = Date.now();
          expect((await router.call(name)).status).toBe(200);
          slowest = Math.max(slowest, Date.now() - before);
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await eventually(
        async () => a.log.length + b.log.length,
        (n) => n >= 4,
      );
      for (const { log } of [a, b]) {
        // A report at once, then at most one a second: 2–4 over about 2 s, where calls were ~100.
        expect(log.length).toBeGreaterThanOrEqual(2);
        expect(log.length).toBeLessThanOrEqual(4);
        for (let i = 1; i < log.length; i++) {
          expect(log[i]!.at - log[i - 1]!.at).toBeGreaterThanOrEqual(1000 - 5);
        }
      }
      // No call waited for a report: each answered in far less than a report round.
      expect(slowest).toBeLessThan(500);
    },
  );
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

  it("learns latency from every isolate: a fresh one times its tries out by the mesh's estimate", async () => {
    const name = uniqueName("latency");
    const spec = {
      timeouts: {
        backendRequest: "auto",
        auto: { minSamples: 10, min: "50ms", max: "5s", factor: 2, quantile: 0.99 },
      },
    };
    const slow = { headers: { "x-echo-delay-ms": "100" } };
    const first = isolatedRouter(serviceWith(name, spec));
    for (let i = 0; i < 20; i++) await first.call(name, "/", slow);
    await eventually(
      () => objectOf(name).view(),
      (v) => (v.latency ?? []).reduce((sum, [, n]) => sum + (n ?? 0), 0) >= 20,
    );
    const second = isolatedRouter(serviceWith(name, spec));
    // Knowing nothing, its first try may take the maximum.
    expect((await second.call(name, "/", slow)).outcome.attempts[0]!.timeoutMs).toBe(5000);
    const status = await eventually(
      second.status,
      (s) => (s.latency[name]?.meshSamples ?? 0) >= 20,
    );
    expect(status.latency[name]!.samples).toBe(1);
    // With the mesh's 20 samples of ~100 ms, a try's timeout is about twice the p99, not 5 s.
    const learned = (await second.call(name, "/", slow)).outcome.attempts[0]!.timeoutMs!;
    expect(learned).toBeGreaterThanOrEqual(200);
    expect(learned).toBeLessThan(1000);
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
    let reports = 0;
    const hanging = {
      getByName: () => ({
        report: () => {
          reports++;
          return new Promise(() => {});
        },
      }),
    };
    const name = uniqueName("hanging");
    const router = isolatedRouter(serviceWith(name, EVERYTHING), { backendState: hanging });
    const started = Date.now();
    const headers = { "x-echo-status": "500" };
    for (let i = 0; i < 5; i++)
      expect((await router.call(name, "/", { headers })).status).toBe(500);
    expect((await router.call(name)).error).toBe("circuit_open"); // tripped locally, at once
    expect(Date.now() - started).toBeLessThan(2000);
    expect((await router.status()).breakers[name]?.state).toBe("open");
    // The reports were sent (and hang): the calls did not wait for them.
    expect(reports).toBeGreaterThanOrEqual(1);
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

describe("location shards", () => {
  // A request from Cloudflare carries its location in `cf.colo`; an isolate notes its first.
  const from = (colo: string, init: RequestInit = {}): RequestInit =>
    ({ ...init, cf: { colo } }) as RequestInit;

  it(
    "a router in another location refuses the open backend once the shards have rolled up",
    {
      timeout: 20_000,
    },
    async () => {
      const name = uniqueName("sharded");
      const amsterdam = isolatedRouter(serviceWith(name, BREAKER));
      const singapore = isolatedRouter(serviceWith(name, BREAKER));
      expect((await singapore.call(name, "/", from("SIN"))).status).toBe(200);
      for (let i = 0; i < 5; i++) {
        await amsterdam.call(name, "/", from("AMS", { headers: { "x-echo-status": "500" } }));
      }
      // Amsterdam's shard opens on its isolate's report and rolls up: the root opens too.
      await eventually(
        () => objectOf(`${name}@AMS`).view(),
        (v) => v.breaker?.kind === "open",
      );
      const root = await eventually(
        () => objectOf(name).view(),
        (v) => v.breaker?.kind === "open",
      );
      expect(root.breaker?.kind).toBe("open");
      // Singapore's isolate has seen no failure; its shard learns the root's state at its next
      // rollup, and the isolate at its next report.
      const refused = await eventually(
        async () => (await singapore.call(name, "/", from("SIN"))).error,
        (error) => error === "circuit_open",
        10_000,
      );
      expect(refused).toBe("circuit_open");
      expect(await objectOf(`${name}@SIN`).rollup()).toMatchObject({
        root: name,
        failedRollups: 0,
      });
      expect((await singapore.status()).backendSync.location).toBe("SIN");
    },
  );

  it(
    "the retry budget holds across locations: the second spends only what the first left",
    {
      timeout: 20_000,
    },
    async () => {
      const name = uniqueName("sharded-budget");
      const spec = {
        retry: { attempts: 2, backoff: "1ms" },
        retryBudget: { ratio: 0.2, minPerSecond: 2, window: "10s" },
      };
      const outage = { "x-echo-key": crypto.randomUUID(), "x-echo-status": "503" };
      const send = async (router: ReturnType<typeof isolatedRouter>, colo: string) =>
        (await router.call(name, "/", from(colo, { headers: outage }))).outcome.attempts.length - 1;
      const first = isolatedRouter(serviceWith(name, spec));
      let retries = 0;
      for (let i = 0; i < 100; i++) retries += await send(first, "AMS");
      expect(retries).toBe(40);
      await eventually(
        () => objectOf(name).view(),
        (v) => (v.budget?.retries ?? 0) >= 40,
      );
      // The second isolate, elsewhere: calls a little apart until it knows the mesh's counts
      // (its shard's report rounds and rollup), then the rest of its 100.
      const second = isolatedRouter(serviceWith(name, spec));
      let secondRetries = 0;
      let early = 0;
      for (let calls = 1; calls <= 100; calls++) {
        secondRetries += await send(second, "SIN");
        const known = (await second.status()).retryBudgets[name]?.requests ?? 0;
        if (known < 100 + calls) {
          early++;
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      }
      // 200 calls mesh-wide allow 0.2 × 200 + 20 = 60 retries, and the first spent 40; until it
      // knew, the second could spend its own allowance (2 retries a call): the lag's price.
      expect(early).toBeLessThan(20);
      expect(retries + secondRetries).toBeLessThanOrEqual(60 + 2 * early);
      expect(secondRetries).toBeLessThan(40);
    },
  );
});

describe("a location shard's answers", () => {
  const budget = (requests: number) => ({ windowMs: 10_000, requests, retries: 0 });
  const rolledUp = async (shard: string, atLeast: number) =>
    eventually(
      async () => (await objectOf(shard).rollup())?.rollups ?? 0,
      (n) => n >= atLeast,
    );

  it(
    "keep the mesh's budget counts after a rollup that carried no budget news",
    {
      timeout: 15_000,
    },
    async () => {
      const name = uniqueName("shard-windows");
      // Amsterdam's isolates have sent 100 requests to the Service; the root knows it.
      await objectOf(`${name}@AMS`).report({ rollUpTo: name, budget: budget(100) });
      await eventually(
        () => objectOf(name).view(),
        (v) => (v.budget?.requests ?? 0) >= 100,
      );
      // Singapore: a budget report (rolled up), then a round with only rate-limit news.
      const sin = objectOf(`${name}@SIN`);
      await sin.report({ rollUpTo: name, budget: budget(1) });
      await rolledUp(`${name}@SIN`, 1);
      await sin.report({ rollUpTo: name, limits: { total: 1 } });
      await rolledUp(`${name}@SIN`, 2);
      // Its next answer about the budget is still the mesh's, not Singapore's alone.
      const answer = await sin.report({ rollUpTo: name, budget: budget(1) });
      expect(answer.budget?.requests).toBeGreaterThanOrEqual(102);
    },
  );
});
