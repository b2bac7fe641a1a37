import { beforeAll, describe, expect, it } from "vitest";
import { callAs, callHttp, httpRoute, publish, service, type Echoed } from "./helpers/mesh.ts";

beforeAll(async () => {
  await publish([
    service("echo", "ECHO_V1", "ECHO_V2"),
    service("orders", "ORDERS"),
    service("echo-v1", "ECHO_V1"),
    service("echo-v2", "ECHO_V2"),
    service("payments", "PAYMENTS_V1"),
    service("payments-v1", "PAYMENTS_V1"),
    service("payments-v2", "PAYMENTS_V2"),
    httpRoute("payments-canary", "payments", [
      {
        backendRefs: [
          { name: "payments-v1", weight: 90 },
          { name: "payments-v2", weight: 10 },
        ],
      },
    ]),
  ]);
});

describe("entries", () => {
  it("routes an HTTP call by the Host header's first label", async () => {
    const response = await callHttp("echo-v2.mesh", "/hello?x=1");
    expect(response.status).toBe(200);
    const body = (await response.json()) as Echoed;
    expect(body.service).toBe("echo-v2");
    expect(body.path).toBe("/hello");
    expect(body.query).toEqual({ x: "1" });
  });

  it("serves a caller's binding through the Mesh entrypoint", async () => {
    const response = await callAs("orders", "payments", "/charge", {
      method: "POST",
      body: JSON.stringify({ amount: 5 }),
      headers: { "content-type": "application/json" },
    });
    expect(response.status).toBe(200);
    const receipt = (await response.json()) as { service: string; amount: number; caller: string };
    expect(["payments-v1", "payments-v2"]).toContain(receipt.service);
    expect(receipt.amount).toBe(5);
    expect(receipt.caller).toBe("spiffe://meshwork.local/orders");
  });

  it("answers no_route for an unknown destination", async () => {
    const response = await callHttp("nowhere.mesh", "/");
    expect(response.status).toBe(404);
    expect(response.headers.get("x-mesh-error")).toBe("no_route");
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("no_route");
    expect(body.error.message).toContain("nowhere");
  });
});

describe("a real caller Worker", () => {
  it("reaches payments through its unchanged binding", async () => {
    const response = await callHttp("orders.mesh", "/orders?amount=7");
    expect(response.status).toBe(201);
    const order = (await response.json()) as { payment: { service: string; caller: string } };
    expect(["payments-v1", "payments-v2"]).toContain(order.payment.service);
    expect(order.payment.caller).toBe("spiffe://meshwork.local/orders");
  });
});
