// Fault injection: a FaultInjection resource referenced from a rule's filters (ExtensionRef)
// delays or aborts that rule's calls at the configured rates (within statistical bounds, fixed
// seed), only for the callers and headers it names; an ExtensionRef that does not resolve answers
// 500 rather than being skipped, as the Gateway API says.
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { seededRandom, type RandomSource } from "../core/random.ts";
import { handleMeshCall } from "../workers/router/app.ts";
import { callAs, callHttp, httpRoute, publish, service, type Echoed } from "./helpers/mesh.ts";

const fault = (name: string, spec: object) => ({
  apiVersion: "meshwork.dev/v1",
  kind: "FaultInjection",
  metadata: { name },
  spec,
});

const ref = (name: string, kind = "FaultInjection", group = "meshwork.dev") => ({
  type: "ExtensionRef",
  extensionRef: { group, kind, name },
});

const prefix = (value: string) => [{ path: { type: "PathPrefix", value } }];

beforeAll(async () => {
  await publish([
    service("echo", "ECHO_V1"),
    service("echo-v1", "ECHO_V1"),
    fault("abort-10", { abort: { percent: 10, status: 503 } }),
    fault("delay-all", { delay: { percent: 100, fixedDelay: "300ms" } }),
    fault("delay-25", { delay: { percent: 25, fixedDelay: "1ms" } }),
    fault("for-orders", { abort: { percent: 100, status: 418 }, callers: ["orders"] }),
    fault("for-chaos-header", {
      abort: { percent: 100, status: 500 },
      headers: [{ name: "x-chaos", value: "on" }],
    }),
    httpRoute("faults", "echo", [
      { matches: prefix("/abort"), filters: [ref("abort-10")], backendRefs: [{ name: "echo-v1" }] },
      {
        matches: prefix("/delay"),
        filters: [ref("delay-all")],
        backendRefs: [{ name: "echo-v1" }],
      },
      {
        matches: prefix("/delay-some"),
        filters: [ref("delay-25")],
        backendRefs: [{ name: "echo-v1" }],
      },
      {
        matches: prefix("/orders-only"),
        filters: [ref("for-orders")],
        backendRefs: [{ name: "echo-v1" }],
      },
      {
        matches: prefix("/header"),
        filters: [ref("for-chaos-header")],
        backendRefs: [{ name: "echo-v1" }],
      },
      { matches: prefix("/missing"), filters: [ref("nope")], backendRefs: [{ name: "echo-v1" }] },
      {
        matches: prefix("/foreign"),
        filters: [ref("x", "Thing", "example.com")],
        backendRefs: [{ name: "echo-v1" }],
      },
      { matches: prefix("/"), backendRefs: [{ name: "echo-v1" }] },
    ]),
  ]);
});

async function callWith(path: string, random: RandomSource): Promise<Response> {
  const ctx = createExecutionContext();
  const response = await handleMeshCall(new Request(`http://echo${path}`), env, ctx, { random });
  await waitOnExecutionContext(ctx);
  return response;
}

describe("fault injection", () => {
  it("aborts at the configured rate (10% of 2000 calls, fixed seed), in the backend's place", async () => {
    const random = seededRandom(99);
    let aborted = 0;
    for (let i = 0; i < 2000; i++) {
      const response = await callWith("/abort", random);
      if (response.status === 503) {
        aborted++;
        expect(response.headers.get("x-mesh-fault")).toBe("abort");
        expect(await response.text()).toMatch(/FaultInjection 'abort-10'/);
      } else {
        expect(((await response.json()) as Echoed).service).toBe("echo-v1");
      }
    }
    // Binomial(2000, 0.1): 200 ± 5 standard deviations (67).
    expect(aborted).toBeGreaterThan(133);
    expect(aborted).toBeLessThan(267);
  });

  it("delays, then calls the backend, and says so on the answer", async () => {
    const started = Date.now();
    const response = await callHttp("echo", "/delay");
    expect(response.status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(response.headers.get("x-mesh-fault")).toBe("delay=300ms");
  });

  it("delays at the configured rate (25% of 1000 calls, fixed seed), and every call still arrives", async () => {
    const random = seededRandom(7);
    let delayed = 0;
    for (let i = 0; i < 1000; i++) {
      const response = await callWith("/delay-some", random);
      expect(response.status).toBe(200);
      if (response.headers.get("x-mesh-fault") === "delay=1ms") delayed++;
      await response.body?.cancel();
    }
    // Binomial(1000, 0.25): 250 ± 5 standard deviations (68).
    expect(delayed).toBeGreaterThan(182);
    expect(delayed).toBeLessThan(318);
  });

  it("applies only to the callers it names", async () => {
    expect((await callAs("orders", "echo", "/orders-only")).status).toBe(418);
    expect((await callAs("billing", "echo", "/orders-only")).status).toBe(200);
    expect((await callHttp("echo", "/orders-only")).status).toBe(200);
  });

  it("applies only to calls with the headers it names", async () => {
    expect((await callHttp("echo", "/header", { headers: { "x-chaos": "on" } })).status).toBe(500);
    expect((await callHttp("echo", "/header")).status).toBe(200);
  });

  it("answers 500 for a rule whose ExtensionRef does not resolve, rather than skip the filter", async () => {
    for (const path of ["/missing", "/foreign"]) {
      const response = await callHttp("echo", path);
      expect(response.status, path).toBe(500);
      expect(response.headers.get("x-mesh-error")).toBe("no_backend");
    }
    expect((await callHttp("echo", "/other")).status).toBe(200);
  });
});
