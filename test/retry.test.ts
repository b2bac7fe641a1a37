// Retries through the whole router, with the Gateway API's own retry conformance expectations
// (HTTPRouteRetry, HTTPRouteRetryWithTimeouts; HTTPRouteRetryConnectionError is in test/http/,
// where workerd's log of the refused connections stays out of the output) and the mesh's own
// rules: idempotent requests only, Retry-After, the body replayed whole, one hop retrying, and
// the retry budget under a total outage. The echo backend recovers on request: with
// X-Echo-Key and X-Echo-Fail-Times it misbehaves only for the first n requests of that key, and
// says how many it has seen.
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { handleMeshCall } from "../workers/router/app.ts";
import { callHttp, httpRoute, publish, service, type Echoed } from "./helpers/mesh.ts";
import { MemoryKV } from "./helpers/memory-kv.ts";
import { isolatedRouter } from "./helpers/router.ts";

const rule = (path: string, retry: object, timeouts?: object) => ({
  matches: [{ path: { type: "PathPrefix", value: path } }],
  backendRefs: [{ name: "echo-v1" }],
  retry,
  ...(timeouts ? { timeouts } : {}),
});

const RETRIES = [
  service("echo", "ECHO_V1"),
  service("echo-v1", "ECHO_V1"),
  httpRoute("retries", "echo", [
    rule("/retry/code-500-attempts-3", { codes: [500], attempts: 3 }),
    rule("/retry/code-all-attempts-2", { codes: [500, 502, 503, 504], attempts: 2 }),
    rule("/retry/code-all-attempts-0", { codes: [500, 502, 503, 504], attempts: 0 }),
    rule("/retry/backend-request-timeout-200ms", { attempts: 2 }, { backendRequest: "200ms" }),
    rule(
      "/retry/request-timeout-200ms",
      { codes: [500], attempts: 5 },
      { backendRequest: "200ms", request: "400ms" },
    ),
    rule("/retry/backoff", { codes: [503], attempts: 2, backoff: "100ms" }),
    rule("/retry/backoff-300ms", { codes: [503], attempts: 1, backoff: "300ms" }),
    { matches: [{ path: { value: "/" } }], backendRefs: [{ name: "echo-v1" }] },
  ]),
];

beforeAll(async () => {
  await publish(RETRIES);
});

let keys = 0;

/** A call whose backend fails `failTimes` times with `status` (or the delay) before it recovers. */
function flaky(
  path: string,
  failTimes: number,
  misbehaviour: Record<string, string>,
  init: RequestInit = {},
) {
  const headers = new Headers(init.headers);
  headers.set("x-echo-key", `retry-${++keys}-${crypto.randomUUID()}`);
  headers.set("x-echo-fail-times", String(failTimes));
  for (const [name, value] of Object.entries(misbehaviour)) headers.set(name, value);
  return callHttp("echo", path, { ...init, headers });
}

async function outcome(response: Response): Promise<{ status: number; seen: number }> {
  const text = await response.text();
  const body = JSON.parse(text) as Partial<Echoed> & { error?: unknown };
  return { status: response.status, seen: body.seen ?? -1 };
}

describe("HTTPRoute retry (Gateway API conformance expectations)", () => {
  it("code 500, attempts 3: recovers after 2 failures; gives the last 500 after 4", async () => {
    const path = "/retry/code-500-attempts-3";
    expect(await outcome(await flaky(path, 2, { "x-echo-status": "500" }))).toEqual({
      status: 200,
      seen: 3,
    });
    expect(await outcome(await flaky(path, 4, { "x-echo-status": "500" }))).toEqual({
      status: 500,
      seen: 4, // the first try and 3 retries
    });
  });

  it("does not retry a status the rule does not list", async () => {
    const response = await flaky("/retry/code-500-attempts-3", 2, { "x-echo-status": "503" });
    expect(await outcome(response)).toEqual({ status: 503, seen: 1 });
  });

  it("codes 500/502/503/504, attempts 2: each recovers after 1 failure, and after 3 gives the code back", async () => {
    for (const code of ["500", "502", "503", "504"]) {
      const path = "/retry/code-all-attempts-2";
      expect((await outcome(await flaky(path, 1, { "x-echo-status": code }))).status, code).toBe(
        200,
      );
      expect(await outcome(await flaky(path, 3, { "x-echo-status": code }))).toEqual({
        status: Number(code),
        seen: 3,
      });
    }
  });

  it("attempts 0 turns retries off", async () => {
    const response = await flaky("/retry/code-all-attempts-0", 1, { "x-echo-status": "500" });
    expect(await outcome(response)).toEqual({ status: 500, seen: 1 });
  });

  it("retries a try that exceeded timeouts.backendRequest, with no codes listed", async () => {
    const path = "/retry/backend-request-timeout-200ms";
    const slow = { "x-echo-delay-ms": "1000" };
    expect(await outcome(await flaky(path, 2, slow))).toMatchObject({ status: 200, seen: 3 });
    const exhausted = await flaky(path, 3, slow);
    expect(exhausted.status).toBe(504);
    expect(exhausted.headers.get("x-mesh-error")).toBe("upstream_timeout");
  });

  it("keeps every try and backoff inside timeouts.request", async () => {
    const path = "/retry/request-timeout-200ms";
    expect((await flaky(path, 4, { "x-echo-status": "500" })).status).toBe(200);
    const started = Date.now();
    const late = await flaky(path, 4, { "x-echo-status": "500", "x-echo-delay-ms": "100" });
    expect(late.status).toBe(504);
    // The deadline (400 ms), not the tries, decides how long the caller waits.
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it("backoff: no retry starts before the rule's backoff has passed", async () => {
    // HTTPRouteRetryBackoff: backoff is the shortest wait between tries (the jitter comes on
    // top), so a retry never follows its failed try sooner.
    for (let i = 0; i < 3; i++) {
      const started = Date.now();
      const recovered = await flaky("/retry/backoff-300ms", 1, { "x-echo-status": "503" });
      expect(await outcome(recovered)).toEqual({ status: 200, seen: 2 });
      expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    }
  });

  it("bounds the caller's wait by timeouts.request when every try hangs", async () => {
    const started = Date.now();
    const hung = await flaky("/retry/request-timeout-200ms", 100, { "x-echo-delay-ms": "5000" });
    expect(hung.status).toBe(504);
    expect(Date.now() - started).toBeLessThan(1500);
  });
});

describe("what the mesh retries", () => {
  it("does not retry a POST, unless it carries Idempotency-Key", async () => {
    const path = "/retry/code-500-attempts-3";
    const post = { method: "POST", body: "order" };
    expect(await outcome(await flaky(path, 1, { "x-echo-status": "500" }, post))).toEqual({
      status: 500,
      seen: 1,
    });
    const keyed = { ...post, headers: { "idempotency-key": "order-42" } };
    expect(await outcome(await flaky(path, 1, { "x-echo-status": "500" }, keyed))).toEqual({
      status: 200,
      seen: 2,
    });
  });

  it("counts every original request toward the retry budget, a POST it tries once included", async () => {
    const router = isolatedRouter(RETRIES, { backendState: undefined });
    const post = { method: "POST", body: "order", headers: { "x-echo-status": "500" } };
    for (let i = 0; i < 5; i++) {
      expect((await router.call("echo", "/retry/code-500-attempts-3", post)).status).toBe(500);
    }
    expect((await router.status()).retryBudgets["echo-v1"]).toEqual({ requests: 5, retries: 0 });
  });

  it("replays a buffered body whole, and sends a body too large to buffer once", async () => {
    const path = "/retry/code-500-attempts-3";
    const text = "x".repeat(10_000) + "end";
    const replayed = await flaky(
      path,
      2,
      { "x-echo-status": "500" },
      { method: "PUT", body: text },
    );
    const body = (await replayed.json()) as Echoed;
    expect(replayed.status).toBe(200);
    expect(body.seen).toBe(3);
    expect(body.body).toBe(text);

    const large = "y".repeat(100_000);
    const once = await flaky(path, 2, { "x-echo-status": "500" }, { method: "PUT", body: large });
    expect(await outcome(once)).toEqual({ status: 500, seen: 1 });
  });

  it("waits what Retry-After asks, and does not retry when it asks for more than the cap", async () => {
    const started = Date.now();
    const asked = await flaky("/retry/backoff", 1, {
      "x-echo-status": "503",
      "x-echo-retry-after": "1",
    });
    expect(await outcome(asked)).toEqual({ status: 200, seen: 2 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    const tooLong = await flaky("/retry/backoff", 1, {
      "x-echo-status": "503",
      "x-echo-retry-after": "11",
    });
    expect(await outcome(tooLong)).toEqual({ status: 503, seen: 1 });
  });

  it("retries at one hop only: it marks its tries, and a marked request is tried once", async () => {
    const path = "/retry/code-500-attempts-3";
    const recovered = (await (await flaky(path, 1, { "x-echo-status": "500" })).json()) as Echoed;
    expect(recovered.headers["x-mesh-retry"]).toBe("off");
    expect(recovered.headers["x-mesh-attempt"]).toBe("2");
    // What a router downstream of a retrying hop receives — or a caller asking for no retries.
    const marked = await flaky(path, 1, { "x-echo-status": "500", "x-mesh-retry": "off" });
    expect(await outcome(marked)).toEqual({ status: 500, seen: 1 });
  });
});

describe("retry budget", () => {
  it("under a total outage, sends at most (1 + 20%) × the calls plus the allowance", async () => {
    // A router of its own (its own budget), over the same routes, reporting to no Durable
    // Object: this is the isolate's own share of the budget (the mesh-wide one has its test).
    const kv = new MemoryKV();
    kv.publish(RETRIES, 1);
    const isolated = {
      ...env,
      MESH_CONFIG: kv as unknown as KVNamespace,
      BACKEND_STATE: undefined as unknown as Env["BACKEND_STATE"],
    };
    const key = `outage-${crypto.randomUUID()}`;
    const calls = 500;
    let failed = 0;
    let seen = 0;
    for (let i = 0; i < calls; i++) {
      const ctx = createExecutionContext();
      const response = await handleMeshCall(
        new Request("http://echo/retry/code-all-attempts-2", {
          headers: { "x-echo-key": key, "x-echo-status": "503" },
        }),
        isolated,
        ctx,
      );
      await waitOnExecutionContext(ctx);
      const body = (await response.json()) as Echoed;
      if (response.status === 503) failed++;
      seen = Math.max(seen, body.seen);
    }
    expect(failed).toBe(calls);
    // Without a budget: 3 tries a call, 1500 sends. With it: 500 + 0.2 × 500 + 10/s × 10 s.
    expect(seen).toBeLessThanOrEqual(calls + 0.2 * calls + 100);
    expect(seen).toBeGreaterThan(calls + 0.2 * calls); // the allowance was used, not just refused
  });
});
