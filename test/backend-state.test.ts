// The circuit breaker's shared half: each isolate reports its breakers' outcomes to the backend's
// Durable Object (BackendState) in batches through waitUntil, at most about once a second, and
// adopts the mesh-wide state it answers. A request never waits for the object, and an object that
// fails or hangs changes nothing but what /.mesh/status says.
import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { handleMeshCall, routerFetch } from "../workers/router/app.ts";
import { service } from "./helpers/mesh.ts";
import { MemoryKV } from "./helpers/memory-kv.ts";

let routers = 0;

const BREAKER = {
  consecutiveFailures: 5,
  baseOpenTime: "5s",
  maxOpenTime: "5s",
  openJitter: 0,
};

/** A router isolate of its own over a Service of its own, reporting to `namespace`. */
function router(namespace: unknown = env.BACKEND_STATE) {
  const name = `shared-${++routers}`;
  const kv = new MemoryKV();
  kv.publish(
    [
      service(name, "ECHO_V1"),
      {
        apiVersion: "meshwork.dev/v1",
        kind: "BackendPolicy",
        metadata: { name: "breaker" },
        spec: { targetRefs: [{ kind: "Service", name }], circuitBreaker: BREAKER },
      },
    ],
    1,
  );
  const routerEnv = {
    ...env,
    MESH_CONFIG: kv as unknown as KVNamespace,
    BACKEND_STATE: namespace as Env["BACKEND_STATE"],
  };
  const call = async (status: number) => {
    const response = await handleMeshCall(
      new Request(`http://${name}/`, { headers: { "x-echo-status": String(status) } }),
      routerEnv,
      createExecutionContext(),
    );
    await response.text();
    return { status: response.status, error: response.headers.get("x-mesh-error") };
  };
  const status = async () => {
    const response = await routerFetch(
      new Request("http://router/.mesh/status"),
      routerEnv,
      createExecutionContext(),
    );
    return (await response.json()) as {
      breakers: Record<string, { state: string }>;
      backendSync: { reports: number; lastError: { message: string } | null };
    };
  };
  return { name, call, status };
}

async function eventually<T>(read: () => Promise<T>, ok: (value: T) => boolean): Promise<T> {
  let value = await read();
  for (let i = 0; i < 60 && !ok(value); i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    value = await read();
  }
  return value;
}

describe("the backend's Durable Object", () => {
  it("sees a 5xx storm and opens the mesh-wide breaker within its threshold", async () => {
    const { name, call } = router();
    for (let i = 0; i < 5; i++) expect((await call(503)).status).toBe(503);
    const view = await eventually(
      () => env.BACKEND_STATE.getByName(name).view(),
      (v) => v.breaker?.kind === "open",
    );
    expect(view.breaker).toMatchObject({ kind: "open", trips: 1 });
  });

  it("hands its state to an isolate that has seen no failure, which then refuses the backend", async () => {
    const first = router();
    for (let i = 0; i < 5; i++) await first.call(500);
    await eventually(
      () => env.BACKEND_STATE.getByName(first.name).view(),
      (v) => v.breaker?.kind === "open",
    );
    // A second isolate (a router of its own) over the same backend, sharing the objects.
    const kv = new MemoryKV();
    kv.publish(
      [
        service(first.name, "ECHO_V1"),
        {
          apiVersion: "meshwork.dev/v1",
          kind: "BackendPolicy",
          metadata: { name: "breaker" },
          spec: { targetRefs: [{ kind: "Service", name: first.name }], circuitBreaker: BREAKER },
        },
      ],
      1,
    );
    const secondEnv = { ...env, MESH_CONFIG: kv as unknown as KVNamespace };
    const secondCall = async () => {
      const response = await handleMeshCall(
        new Request(`http://${first.name}/`),
        secondEnv,
        createExecutionContext(),
      );
      await response.text();
      return response.headers.get("x-mesh-error");
    };
    // Its first call goes through (it knows nothing yet) and its report brings the state back.
    expect(await secondCall()).toBeNull();
    const refused = await eventually(secondCall, (error) => error === "circuit_open");
    expect(refused).toBe("circuit_open");
  });

  it("gets at most about one report per isolate per second", { timeout: 15_000 }, async () => {
    const { call, status } = router();
    // 100 calls, one every 20 ms: about two seconds of steady news.
    for (let i = 0; i < 100; i++) {
      await call(200);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const { backendSync } = await eventually(status, (s) => s.backendSync.reports >= 2);
    // A report at once, then one a second: 3 over about 2 s (4 at the edges), not 100.
    expect(backendSync.reports).toBeGreaterThanOrEqual(2);
    expect(backendSync.reports).toBeLessThanOrEqual(4);
  });

  it("never holds a request up: an object that never answers changes no response", async () => {
    const hanging = { getByName: () => ({ report: () => new Promise(() => {}) }) };
    const { call, status } = router(hanging);
    const started = Date.now();
    for (let i = 0; i < 5; i++) expect((await call(500)).status).toBe(500);
    expect((await call(200)).error).toBe("circuit_open"); // tripped locally, at once
    expect(Date.now() - started).toBeLessThan(2000);
    expect((await status()).breakers).toBeDefined();
  });

  it("keeps the local state and says so in status when the object fails", async () => {
    const failing = {
      getByName: () => ({ report: () => Promise.reject(new Error("object unreachable")) }),
    };
    const { name, call, status } = router(failing);
    for (let i = 0; i < 5; i++) await call(500);
    expect((await call(200)).error).toBe("circuit_open");
    const s = await eventually(status, (v) => v.backendSync.lastError !== null);
    expect(s.backendSync.lastError?.message).toMatch(/object unreachable/);
    expect(s.breakers[name]?.state).toBe("open");
  });
});
