// End-to-end smoke test of `npm start`: the real script, wrangler dev and workerd, the demo
// config from examples/mesh.yaml published to local KV, and calls over real HTTP. It runs on its
// own ports and state (see mesh-process.mjs), so a developer's `npm start` on 8787 is unaffected.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEV_ADMIN_TOKEN } from "../../scripts/workers.mjs";
import { startMesh, type RunningMesh } from "./mesh-process.mjs";

const ADMIN = { authorization: `Bearer ${DEV_ADMIN_TOKEN}` };

let mesh: RunningMesh | undefined;

function running(): RunningMesh {
  if (!mesh) throw new Error("the mesh did not start (see beforeAll's error)");
  return mesh;
}

beforeAll(async () => {
  mesh = await startMesh({ preferredPort: 18787 });
});

afterAll(async () => {
  await mesh?.stop();
});

describe("npm start", () => {
  it("says where to look", () => {
    const output = running().output();
    expect(output).toContain(`curl -H 'Host: echo' http://127.0.0.1:${running().port}/hello`);
    expect(output).toContain(`http://127.0.0.1:${running().port}/.mesh/status`);
  });

  it("runs the published config, version 1", async () => {
    expect((await running().call("meshwork-router", "/.mesh/status")).status).toBe(401);
    const response = await running().call("meshwork-router", "/.mesh/status", ADMIN);
    expect(response.status).toBe(200);
    const status = response.json<{ version: number; error: unknown }>();
    expect(status.version).toBe(1);
    expect(status.error).toBeNull();
  });

  it("routes by the Host header to one echo version", async () => {
    const response = await running().call("echo-v1", "/hello?x=1");
    expect(response.status).toBe(200);
    const body = response.json<{ service: string; version: string; path: string }>();
    expect(body).toMatchObject({ service: "echo-v1", version: "v1", path: "/hello" });
  });

  it("applies the echo route from examples/mesh.yaml", async () => {
    const pinned = await running().call("echo", "/hello");
    expect(pinned.status).toBe(200);
    expect(["echo-v1", "echo-v2"]).toContain(pinned.json<{ service: string }>().service);

    const rewritten = await running().call("echo", "/v2/hello");
    expect(rewritten.status).toBe(200);
    expect(rewritten.json<{ service: string; path: string }>()).toMatchObject({
      service: "echo-v2",
      path: "/hello",
    });
  });

  it("carries orders → payments through the mesh with the caller's identity", async () => {
    const response = await running().call("orders", "/orders?amount=7");
    expect(response.status, response.body).toBe(201);
    const order = response.json<{
      amount: number;
      payment: { service: string; caller: string };
    }>();
    expect(order.amount).toBe(7);
    expect(["payments-v1", "payments-v2"]).toContain(order.payment.service);
    expect(order.payment.caller).toBe("spiffe://meshwork.local/orders");
  });

  it("shows the demo circuit breaker trip, in /.mesh/status, and close again", async () => {
    const mesh = running();
    for (let i = 0; i < 5; i++) {
      expect((await mesh.call("echo-v3", "/", { "x-echo-status": "500" })).status).toBe(500);
    }
    const refused = await mesh.call("echo-v3", "/");
    expect(refused.status).toBe(503);
    expect(refused.headers["x-mesh-error"]).toBe("circuit_open");
    const open = (await mesh.call("meshwork-router", "/.mesh/status", ADMIN)).json<{
      breakers: Record<string, { state: string }>;
    }>();
    expect(open.breakers["echo-v3"]?.state).toBe("open");
    // baseOpenTime 5s (+10% jitter), counted from when the backend's object tripped: up to one
    // report (about a second) after this isolate did.
    await new Promise((resolve) => setTimeout(resolve, 8_000));
    expect((await mesh.call("echo-v3", "/")).status).toBe(200); // the probe
    const closed = (await mesh.call("meshwork-router", "/.mesh/status", ADMIN)).json<{
      breakers: Record<string, { state: string }>;
    }>();
    expect(closed.breakers["echo-v3"]?.state).toBe("closed");
  });

  it("retries the demo's gateway errors, and rate limits calls to echo-v3 with Retry-After", async () => {
    const mesh = running();
    const recovered = await mesh.call("echo-v3", "/", {
      "x-echo-status": "503",
      "x-echo-fail-times": "2",
      "x-echo-key": `e2e-${Date.now()}`,
    });
    expect(recovered.status).toBe(200);
    expect(recovered.json<{ seen: number }>().seen).toBe(3);
    // 5 a second with bursts of 10: twenty at once cannot all pass.
    const answers = await Promise.all(Array.from({ length: 20 }, () => mesh.call("echo-v3", "/")));
    const limited = answers.filter((a) => a.status === 429);
    expect(limited.length).toBeGreaterThan(0);
    expect(limited[0]!.headers["x-mesh-error"]).toBe("rate_limited");
    expect(Number(limited[0]!.headers["retry-after"])).toBeGreaterThanOrEqual(1);
  });

  it("runs the identity Worker: a bootstrap workload's SVID, payments for orders only, no /admin", async () => {
    const mesh = running();
    const identity = `http://127.0.0.1:${mesh.identityPort}`;
    const jwks = (await (await fetch(`${identity}/.well-known/jwks.json`)).json()) as {
      keys: unknown[];
    };
    expect(jwks.keys.length).toBeGreaterThanOrEqual(2);
    const issued = await fetch(`${identity}/v1/svid`, {
      method: "POST",
      headers: { authorization: "Bearer meshwork-dev-bootstrap-reports" },
    });
    expect(issued.status).toBe(200);
    const { token, spiffeId } = (await issued.json()) as { token: string; spiffeId: string };
    expect(spiffeId).toBe("spiffe://meshwork.local/reports");
    const refused = await fetch(`${identity}/v1/svid`, {
      method: "POST",
      headers: { authorization: "Bearer not-the-secret" },
    });
    expect(refused.status).toBe(401);

    const echoed = await mesh.call("echo", "/hello", { "x-mesh-svid": token });
    expect(echoed.status).toBe(200);
    const headers = echoed.json<{ headers: Record<string, string> }>().headers;
    expect(headers["x-mesh-caller"]).toBe("spiffe://meshwork.local/reports");
    expect(headers["x-mesh-svid"]).toBeUndefined();
    // The router's passport key was certified by the identity Worker (another process).
    expect(headers["x-mesh-passport"]).toMatch(/^ey/);

    expect((await mesh.call("payments", "/charge")).status).toBe(401);
    const forbidden = await mesh.call("payments", "/charge", { "x-mesh-svid": token });
    expect(forbidden.status).toBe(403);
    expect(forbidden.headers["x-mesh-error"]).toBe("forbidden");
    expect((await mesh.call("echo", "/ADMIN/")).status).toBe(403);
  });

  it("answers no_route for an unknown destination", async () => {
    const response = await running().call("nowhere", "/");
    expect(response.status).toBe(404);
    expect(response.headers["x-mesh-error"]).toBe("no_route");
    expect(response.json<{ error: { code: string } }>().error.code).toBe("no_route");
  });
});
