// The circuit breaker of a backend Service (BackendPolicy.circuitBreaker) in one router isolate:
// it trips on a streak of 5xx (a plain 500 included) or on a failure rate, refuses calls with
// circuit_open while open, lets a probe through when the open time is up, closes on its success
// and opens again, for longer, on its failure. Each test runs a router of its own (its own KV
// binding, so its own breakers).
import { describe, expect, it } from "vitest";
import { httpRoute, service } from "./helpers/mesh.ts";
import { backendPolicy, isolatedRouter, sleep, uniqueName } from "./helpers/router.ts";

/**
 * A router of its own over `flaky-<n>`, a Service of its own: the breakers of this isolate and
 * the backend's Durable Object start fresh for each test.
 */
function router(circuitBreaker: object) {
  const name = uniqueName("flaky");
  const isolated = isolatedRouter([
    service(name, "ECHO_V1"),
    backendPolicy("flaky-breaker", [name], { circuitBreaker }),
  ]);
  const key = `breaker-${crypto.randomUUID()}`;
  const call = async (status = 200) => {
    const answer = await isolated.call(name, "/", {
      headers: { "x-echo-key": key, "x-echo-status": String(status) },
    });
    return { status: answer.status, error: answer.error, seen: answer.echo?.seen };
  };
  const status = async () => ({ flaky: (await isolated.status()).breakers[name] });
  return { call, status };
}

const STREAK = {
  consecutiveFailures: 5,
  baseOpenTime: "200ms",
  maxOpenTime: "1s",
  openJitter: 0,
  halfOpenProbes: 1,
};

describe("circuit breaker (one isolate)", () => {
  it("opens after 5 consecutive 500s, then refuses with circuit_open without calling the backend", async () => {
    const { call, status } = router(STREAK);
    for (let i = 0; i < 4; i++) expect((await call(500)).status).toBe(500);
    expect((await status()).flaky?.state).toBe("closed");
    expect((await call(500)).status).toBe(500); // the 5th failure trips it
    const refused = await call(200);
    expect(refused).toEqual({ status: 503, error: "circuit_open", seen: undefined });
    expect((await status()).flaky).toMatchObject({ state: "open", trips: 1 });
  });

  it("lets one probe through when the open time is up, and closes on its success", async () => {
    const { call, status } = router(STREAK);
    for (let i = 0; i < 5; i++) await call(500);
    expect((await call()).error).toBe("circuit_open");
    await sleep(250);
    const probe = await call(200);
    expect(probe.status).toBe(200);
    expect(probe.seen).toBe(6); // 5 failures, then the probe: nothing in between
    expect((await status()).flaky?.state).toBe("closed");
    expect((await call(200)).status).toBe(200);
  });

  it("opens again, for twice as long, when the probe fails", async () => {
    const { call, status } = router(STREAK);
    for (let i = 0; i < 5; i++) await call(500);
    await sleep(250);
    expect((await call(500)).status).toBe(500); // the probe fails
    expect((await status()).flaky).toMatchObject({ state: "open", trips: 2 });
    await sleep(250); // 200 ms was the first open time; the second is 400 ms
    expect((await call()).error).toBe("circuit_open");
    await sleep(200);
    expect((await call(200)).status).toBe(200);
  });

  it("opens on a failure rate once the window holds the minimum requests", async () => {
    const { call } = router({
      consecutiveFailures: 0,
      failureRate: 0.5,
      minimumRequests: 10,
      window: "10s",
      openJitter: 0,
    });
    for (let i = 0; i < 9; i++) expect((await call(i % 2 ? 200 : 503)).error).toBeNull();
    // 10 calls, 5 failed: 50%.
    expect((await call(200)).status).toBe(200);
    const refused = await call(200);
    expect(refused.error).toBe("circuit_open");
  });

  it("does not count 4xx as failures", async () => {
    const { call } = router(STREAK);
    for (let i = 0; i < 10; i++) expect((await call(404)).status).toBe(404);
    expect((await call(200)).status).toBe(200);
  });
});

describe("outlier ejection", () => {
  /** `dest-<n>` split 50/50 over two backends of its own, each with a breaker; pins allowed. */
  function split() {
    const [dest, a, b] = [uniqueName("dest"), uniqueName("a"), uniqueName("b")];
    const destination = service(dest, "ECHO_V1");
    const isolated = isolatedRouter([
      { ...destination, spec: { ...destination.spec, backendPinning: { enabled: true } } },
      service(a, "ECHO_V1"),
      service(b, "ECHO_V2"),
      httpRoute(dest, dest, [
        {
          backendRefs: [
            { name: a, weight: 50 },
            { name: b, weight: 50 },
          ],
        },
      ]),
      backendPolicy("breakers", [a, b], { circuitBreaker: STREAK }),
    ]);
    const call = async (headers: Record<string, string> = {}) => {
      const answer = await isolated.call(dest, "/", { headers });
      return { status: answer.status, error: answer.error, service: answer.echo?.service };
    };
    return { a, b, call };
  }

  it("takes a backend whose breaker is open out of the split: its share goes to the other", async () => {
    const { b, call } = split();
    // Trip b's breaker: five failures pinned to it.
    for (let i = 0; i < 5; i++) {
      expect((await call({ "x-mesh-backend": b, "x-echo-status": "500" })).status).toBe(500);
    }
    const served = new Set<string | undefined>();
    for (let i = 0; i < 60; i++) {
      const result = await call();
      expect(result.status).toBe(200);
      served.add(result.service);
    }
    expect(served).toEqual(new Set(["echo-v1"]));
  });

  it("answers no_healthy_backend when every backend of the split is open", async () => {
    const { a, b, call } = split();
    for (const backend of [a, b]) {
      for (let i = 0; i < 5; i++) await call({ "x-mesh-backend": backend, "x-echo-status": "503" });
    }
    const result = await call();
    expect(result).toMatchObject({ status: 503, error: "no_healthy_backend" });
  });
});
