// BackendPolicy in one router isolate, end to end through the pipeline: retries a policy turns
// on (and which requests and failures they cover), the `auto` per-try timeout learning from the
// backend's latency, rate limits with Retry-After, outlier ejection (its cap, fail-open), failover,
// balancing across a Service's endpoints, and the one outcome each call records. Each test runs
// a router of its own over Services of its own (test/helpers/router.ts).
import { describe, expect, it } from "vitest";
import { service } from "./helpers/mesh.ts";
import { backendPolicy, isolatedRouter, sleep, uniqueName } from "./helpers/router.ts";

const LOCAL_ONLY = { backendState: undefined };

function flakyHeaders(failTimes: number, status: number, extra: Record<string, string> = {}) {
  return {
    "x-echo-key": crypto.randomUUID(),
    "x-echo-fail-times": String(failTimes),
    "x-echo-status": String(status),
    ...extra,
  };
}

describe("retries set by a BackendPolicy", () => {
  const name = uniqueName("retried");
  const router = isolatedRouter(
    [
      service(name, "ECHO_V1"),
      backendPolicy("retry", [name], { retry: { attempts: 2, backoff: "1ms" } }),
    ],
    LOCAL_ONLY,
  );

  it("retries gateway errors by default, and records every try in the call's outcome", async () => {
    const answer = await router.call(name, "/", { headers: flakyHeaders(2, 503) });
    expect(answer.status).toBe(200);
    expect(answer.echo?.seen).toBe(3);
    expect(answer.outcome.attempts.map((a) => a.status)).toEqual([503, 503, 200]);
    expect(answer.outcome.attempts.every((a) => a.service === name)).toBe(true);
    expect(answer.outcome.backend).toBe(name);
  });

  it("does not retry a plain 500 unless the policy says 5xx", async () => {
    const answer = await router.call(name, "/", { headers: flakyHeaders(1, 500) });
    expect(answer.status).toBe(500);
    expect(answer.outcome.attempts).toHaveLength(1);
  });

  it("does not retry a POST, unless it carries Idempotency-Key", async () => {
    const post = await router.call(name, "/", { method: "POST", headers: flakyHeaders(1, 503) });
    expect(post.status).toBe(503);
    expect(post.outcome.attempts).toHaveLength(1);
    const keyed = await router.call(name, "/", {
      method: "POST",
      body: "order",
      headers: flakyHeaders(1, 503, { "idempotency-key": "order-1" }),
    });
    expect(keyed.status).toBe(200);
    expect(keyed.echo?.body).toBe("order");
  });

  it("retries any 5xx and non-idempotent requests when the policy allows both", async () => {
    const other = uniqueName("retried-all");
    const all = isolatedRouter(
      [
        service(other, "ECHO_V1"),
        backendPolicy("retry-all", [other], {
          retry: { on: ["5xx"], nonIdempotent: true, backoff: "1ms" },
        }),
      ],
      LOCAL_ONLY,
    );
    const answer = await all.call(other, "/", {
      method: "POST",
      body: "again",
      headers: flakyHeaders(1, 500),
    });
    expect(answer.status).toBe(200);
    expect(answer.echo?.seen).toBe(2);
    expect(answer.echo?.body).toBe("again");
  });
});

describe("auto per-try timeout", () => {
  it("waits up to the maximum until it has samples, then cuts a hang at the learned timeout", async () => {
    const name = uniqueName("learning");
    const router = isolatedRouter(
      [
        service(name, "ECHO_V1"),
        backendPolicy("auto", [name], {
          timeouts: {
            backendRequest: "auto",
            auto: { minSamples: 20, factor: 2, min: "50ms", max: "5s" },
          },
        }),
      ],
      LOCAL_ONLY,
    );
    // Too few samples: the timeout is the maximum, and a 300 ms answer is waited for.
    const slow = await router.call(name, "/", { headers: { "x-echo-delay-ms": "300" } });
    expect(slow.status).toBe(200);
    expect(slow.outcome.attempts[0]!.timeoutMs).toBe(5000);
    for (let i = 0; i < 30; i++)
      await router.call(name, "/", { headers: { "x-echo-delay-ms": "5" } });
    // Learned: p99 of about 5 ms, times 2, no less than 50 ms — far below the 5 s maximum.
    const started = Date.now();
    const hung = await router.call(name, "/", { headers: { "x-echo-delay-ms": "3000" } });
    expect(hung.error).toBe("upstream_timeout");
    const learned = hung.outcome.attempts[0]!.timeoutMs!;
    expect(learned).toBeGreaterThanOrEqual(50);
    expect(learned).toBeLessThan(5000);
    expect(Date.now() - started).toBeLessThan(2500);
    const status = await router.status();
    expect(status.latency[name]!.samples).toBeGreaterThanOrEqual(31);
  });
});

describe("auto per-try timeout under a request timeout", () => {
  it("learns from answered tries even while the call's deadline is the tighter limit", async () => {
    const name = uniqueName("learning-bounded");
    const router = isolatedRouter(
      [
        service(name, "ECHO_V1"),
        backendPolicy("auto", [name], {
          timeouts: { request: "3s", backendRequest: "auto", auto: { minSamples: 5 } },
        }),
      ],
      LOCAL_ONLY,
    );
    const first = await router.call(name);
    expect(first.outcome.attempts[0]!.deadlineLimited).toBe(true); // 3 s left < the 10 s maximum
    for (let i = 0; i < 5; i++) await router.call(name);
    const learned = await router.call(name);
    expect(learned.outcome.attempts[0]!.deadlineLimited).toBe(false);
    // Learned: well under what is left of the call (echo answers in a few ms; 100 ms minimum).
    expect(learned.outcome.attempts[0]!.timeoutMs).toBeGreaterThanOrEqual(100);
    expect(learned.outcome.attempts[0]!.timeoutMs).toBeLessThan(2000);
    expect((await router.status()).latency[name]!.samples).toBeGreaterThanOrEqual(6);
  });
});

describe("rate limits", () => {
  it("refuses calls beyond the total with rate_limited, Retry-After, and no call to the backend", async () => {
    const name = uniqueName("limited");
    const router = isolatedRouter(
      [
        service(name, "ECHO_V1"),
        backendPolicy("limit", [name], {
          rateLimit: { total: { requestsPerSecond: 0.5, burst: 3 } },
        }),
      ],
      LOCAL_ONLY,
    );
    const key = crypto.randomUUID();
    const answers = [];
    for (let i = 0; i < 4; i++) {
      answers.push(await router.call(name, "/", { headers: { "x-echo-key": key } }));
    }
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 429]);
    const refused = answers[3]!;
    expect(refused.error).toBe("rate_limited");
    expect(refused.headers.get("retry-after")).toBe("2"); // a token every 2 s
    expect(refused.outcome.limitedBy).toBe("total");
    expect(refused.outcome.attempts).toHaveLength(0);
    const after = await router.call(name, "/", { headers: { "x-echo-key": key } });
    expect(after.status).toBe(429);
    const status = await router.status();
    expect(status.rateLimits[name]!.total!.share).toBe(1);
  });

  it("limits each caller on its own, named callers by their override, unidentified ones together", async () => {
    const name = uniqueName("per-caller");
    const router = isolatedRouter(
      [
        service(name, "ECHO_V1"),
        backendPolicy("limit", [name], {
          rateLimit: {
            perCaller: { requestsPerSecond: 0.1, burst: 2 },
            overrides: [{ callers: ["vip"], requestsPerSecond: 0.1, burst: 5 }],
          },
        }),
      ],
      LOCAL_ONLY,
    );
    const admitted = async (caller: string | undefined, calls: number) => {
      let ok = 0;
      for (let i = 0; i < calls; i++) {
        if ((await router.call(name, "/", {}, caller)).status === 200) ok++;
      }
      return ok;
    };
    expect(await admitted("orders", 4)).toBe(2);
    expect(await admitted("billing", 4)).toBe(2);
    expect(await admitted("vip", 7)).toBe(5);
    expect(await admitted(undefined, 4)).toBe(2);
    const refused = await router.call(name, "/", {}, "orders");
    expect(refused.outcome.limitedBy).toBe("caller:orders");
    expect(refused.error).toBe("rate_limited");
    expect(refused.status).toBe(429);
    // A token every 10 s: the caller is told to come back then, in whole seconds.
    const retryAfter = Number(refused.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(9);
    expect(retryAfter).toBeLessThanOrEqual(10);
  });
});

describe("rate limits, together", () => {
  it("does not charge the caller's own limit for a call the total refused", async () => {
    const name = uniqueName("both-limits");
    const router = isolatedRouter(
      [
        service(name, "ECHO_V1"),
        backendPolicy("limit", [name], {
          rateLimit: {
            perCaller: { requestsPerSecond: 0.1, burst: 2 },
            total: { requestsPerSecond: 0.1, burst: 1 },
          },
        }),
      ],
      LOCAL_ONLY,
    );
    expect((await router.call(name, "/", {}, "orders")).status).toBe(200);
    // The total is spent: refused by it, twice — the caller's second token is still there.
    expect((await router.call(name, "/", {}, "orders")).outcome.limitedBy).toBe("total");
    expect((await router.call(name, "/", {}, "orders")).outcome.limitedBy).toBe("total");
  });
});

describe("the breaker and the call's time", () => {
  it("sends no try when a fault's delay ate the call's deadline, and blames no backend", async () => {
    const name = uniqueName("late");
    const router = isolatedRouter(
      [
        service(name, "ECHO_V1"),
        {
          apiVersion: "gateway.networking.k8s.io/v1",
          kind: "HTTPRoute",
          metadata: { name: `${name}-route` },
          spec: {
            parentRefs: [{ name }],
            rules: [
              {
                matches: [{ headers: [{ name: "x-slow", value: "yes" }] }],
                filters: [
                  {
                    type: "ExtensionRef",
                    extensionRef: { group: "meshwork.dev", kind: "FaultInjection", name: "slow" },
                  },
                ],
                backendRefs: [{ name }],
                timeouts: { request: "100ms" },
              },
              { backendRefs: [{ name }] },
            ],
          },
        },
        {
          apiVersion: "meshwork.dev/v1",
          kind: "FaultInjection",
          metadata: { name: "slow" },
          spec: { delay: { percent: 100, fixedDelay: "150ms" } },
        },
        backendPolicy("breaker", [name], { circuitBreaker: { consecutiveFailures: 1 } }),
      ],
      LOCAL_ONLY,
    );
    const late = await router.call(name, "/", { headers: { "x-slow": "yes" } });
    expect(late.error).toBe("upstream_timeout");
    expect(late.outcome.attempts[0]!.endpoint).toBeUndefined();
    expect(late.outcome.transitions).toEqual([]);
    expect((await router.call(name)).status).toBe(200); // the breaker is still closed
  });

  it("stops retrying when the breaker would refuse, and answers what the upstream said", async () => {
    const name = uniqueName("probe");
    const router = isolatedRouter(
      [
        service(name, "ECHO_V1"),
        backendPolicy("breaker", [name], {
          circuitBreaker: {
            consecutiveFailures: 1,
            baseOpenTime: "100ms",
            maxOpenTime: "100ms",
            openJitter: 0,
          },
          retry: { attempts: 2, backoff: "1ms" },
        }),
      ],
      LOCAL_ONLY,
    );
    const failing = { headers: { "x-echo-status": "503" } };
    // Three tries, all 503: the first failure recorded trips the breaker.
    expect((await router.call(name, "/", failing)).status).toBe(503);
    await sleep(150);
    const probe = await router.call(name, "/", failing);
    expect(probe.status).toBe(503);
    expect(probe.error).toBeNull(); // the upstream's 503, not circuit_open
    expect(probe.outcome.attempts).toHaveLength(1);
    expect(probe.outcome.retryStopped).toBe("breaker");
  });
});

describe("outlier ejection and failover", () => {
  const OPEN_LONG = {
    circuitBreaker: {
      consecutiveFailures: 1,
      baseOpenTime: "1m",
      maxOpenTime: "1m",
      openJitter: 0,
    },
  };

  /**
   * A router of its own with backends a (echo-v1) and b (echo-v2) split 50/50 behind `front`,
   * whose policy is `outlier`, and a way to trip each backend's breaker (b after a, so b stays
   * open longer).
   */
  function ejectionMesh(outlier?: object) {
    const a = uniqueName("eject-a");
    const b = uniqueName("eject-b");
    const front = uniqueName("eject-front");
    const router = isolatedRouter(
      [
        service(a, "ECHO_V1"),
        service(b, "ECHO_V2"),
        service(front, "ECHO_V1"),
        {
          apiVersion: "gateway.networking.k8s.io/v1",
          kind: "HTTPRoute",
          metadata: { name: `${front}-split` },
          spec: {
            parentRefs: [{ name: front }],
            rules: [
              {
                backendRefs: [
                  { name: a, weight: 50 },
                  { name: b, weight: 50 },
                ],
              },
            ],
          },
        },
        backendPolicy("breakers", [a, b], OPEN_LONG),
        ...(outlier ? [backendPolicy("outlier", [front], { outlierDetection: outlier })] : []),
      ],
      LOCAL_ONLY,
    );
    const trip = async (backend: string) => {
      const answer = await router.call(backend, "/", { headers: { "x-echo-status": "500" } });
      expect(answer.outcome.transitions).toEqual([
        { service: backend, from: "closed", to: "open" },
      ]);
      await sleep(5); // the next trip opens later, so it reopens later
    };
    return { a, b, front, router, trip };
  }

  it("ejects an open backend from the split, then answers no_healthy_backend when all are", async () => {
    const { a, b, front, router, trip } = ejectionMesh();
    await trip(a);
    for (let i = 0; i < 10; i++) {
      const answer = await router.call(front);
      expect(answer.echo?.service).toBe("echo-v2");
      expect(answer.outcome.ejected).toEqual([a]);
    }
    await trip(b);
    const none = await router.call(front);
    expect(none.error).toBe("no_healthy_backend");
    expect([...none.outcome.ejected].sort()).toEqual([a, b].sort());
  });

  it("keeps backends beyond maxEjectionPercent in the split, and calls them anyway", async () => {
    const { a, b, front, router, trip } = ejectionMesh({ maxEjectionPercent: 50 });
    await trip(a);
    await trip(b);
    // Both open; half of two may leave: b, open longest. a stays, called past its breaker.
    for (let i = 0; i < 5; i++) {
      const answer = await router.call(front);
      expect(answer.status).toBe(200);
      expect(answer.echo?.service).toBe("echo-v1");
      expect(answer.outcome.ejected).toEqual([b]);
    }
    expect((await router.call(a)).error).toBe("circuit_open"); // called directly, it is open
  });

  it("with fail-open, calls the backend that reopens first instead of answering 503", async () => {
    const { front, router, trip, a, b } = ejectionMesh({ failOpen: true });
    await trip(a);
    await trip(b);
    const answer = await router.call(front);
    expect(answer.status).toBe(200);
    // b tripped last, so it stays open longest: a is the least bad.
    expect(answer.echo?.service).toBe("echo-v1");
    expect(answer.outcome.ejected).toEqual([b]);
  });

  it("sends a lone backend's calls to its failover Service while its breaker is open", async () => {
    const solo = uniqueName("solo");
    const dr = uniqueName("solo-dr");
    const failover = isolatedRouter(
      [
        service(solo, "ECHO_V1"),
        service(dr, "ECHO_V3"),
        backendPolicy("solo", [solo], { ...OPEN_LONG, failover: { service: dr } }),
      ],
      LOCAL_ONLY,
    );
    expect((await failover.call(solo, "/", { headers: { "x-echo-status": "500" } })).status).toBe(
      500,
    );
    const answer = await failover.call(solo);
    expect(answer.status).toBe(200);
    expect(answer.echo?.service).toBe("echo-v3");
    expect(answer.outcome.failedOverFrom).toBe(solo);
    expect(answer.outcome.backend).toBe(dr);
  });
});

describe("balancing across a Service's endpoints", () => {
  it("takes the endpoints in turn by default (round robin)", async () => {
    const name = uniqueName("rr");
    const router = isolatedRouter([service(name, "ECHO_V1", "ECHO_V2")], LOCAL_ONLY);
    const seen = [];
    for (let i = 0; i < 6; i++) seen.push((await router.call(name)).echo?.service);
    expect(seen).toEqual(["echo-v1", "echo-v2", "echo-v1", "echo-v2", "echo-v1", "echo-v2"]);
  });

  it("spreads calls over every endpoint with Random", async () => {
    const name = uniqueName("lb-random");
    const router = isolatedRouter(
      [
        service(name, "ECHO_V1", "ECHO_V2"),
        backendPolicy("lb", [name], { loadBalancer: { type: "Random" } }),
      ],
      LOCAL_ONLY,
    );
    const answers = await Promise.all(Array.from({ length: 40 }, () => router.call(name)));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(new Set(answers.map((a) => a.echo?.service))).toEqual(new Set(["echo-v1", "echo-v2"]));
  });

  it("with PeakEWMA, sends most calls to the faster endpoint", async () => {
    const name = uniqueName("lb-ewma");
    const router = isolatedRouter(
      [
        service(name, "ECHO_V1", "ECHO_V2"),
        backendPolicy("lb", [name], { loadBalancer: { type: "PeakEWMA" } }),
      ],
      LOCAL_ONLY,
    );
    // echo-v1 answers in 60 ms, echo-v2 at once.
    const slowV1 = { headers: { "x-echo-only": "echo-v1", "x-echo-delay-ms": "60" } };
    const served: string[] = [];
    for (let i = 0; i < 40; i++) served.push((await router.call(name, "/", slowV1)).echo!.service);
    const fast = served.filter((s) => s === "echo-v2").length;
    // Round robin would give 20 each; the balancer learns within a few calls.
    expect(fast).toBeGreaterThanOrEqual(32);
  });
});
