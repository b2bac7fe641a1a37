// Retries across hops: router → orders (a real Worker) → router → payments. Both routes retry
// what fails, so without the retry mark crossing orders every try of the first hop would be
// tried three times at the second (9 sends for one call); with orders wrapped by
// sdk/mesh-context.ts the second hop sees `X-Mesh-Retry: off` and tries once (3 sends).
// "payments" here is echo made to fail: a header filter asks it for 503 and a key to count by.
import { describe, expect, it } from "vitest";
import { callHttp, httpRoute, publish, service } from "./helpers/mesh.ts";
import { backendPolicy } from "./helpers/router.ts";

interface Order {
  paymentStatus: number;
  payment: { seen: number; headers: Record<string, string> };
}

function meshOfTwoHops(key: string) {
  return [
    service("orders", "ORDERS"),
    service("payments", "ECHO_V1"),
    // The first hop: calls to orders are retried when orders answers 502 (its payment failed).
    httpRoute("orders-retries", "orders", [
      { backendRefs: [{ name: "orders" }], retry: { codes: [502], attempts: 2, backoff: "1ms" } },
    ]),
    // The second hop: orders' POST to payments is retried too (the policy allows POST).
    httpRoute("payments-fails", "payments", [
      {
        filters: [
          {
            type: "RequestHeaderModifier",
            requestHeaderModifier: {
              set: [
                { name: "x-echo-status", value: "503" },
                { name: "x-echo-key", value: key },
              ],
            },
          },
        ],
        backendRefs: [{ name: "payments" }],
      },
    ]),
    backendPolicy("payments-retries", ["payments"], {
      retry: { attempts: 2, on: ["5xx"], nonIdempotent: true, backoff: "1ms" },
      // Room for every retry of this test (the default budget's allowance is 10 a second).
      retryBudget: { ratio: 1, minPerSecond: 100 },
    }),
  ];
}

describe("retries across hops", () => {
  it("a call through orders to a failing payments is retried at the first hop only", async () => {
    const key = `hops-${crypto.randomUUID()}`;
    await publish(meshOfTwoHops(key));
    const response = await callHttp("orders.mesh", "/orders?amount=3");
    expect(response.status).toBe(502);
    const order = (await response.json()) as Order;
    expect(order.paymentStatus).toBe(503);
    // 3 tries of orders, each sending payments one try: 3, where 3 × 3 = 9 without the mark.
    expect(order.payment.seen).toBe(3);
    expect(order.payment.headers["x-mesh-retry"]).toBe("off");
  });

  it("a caller asking for no retries gets one try at every hop", async () => {
    const key = `hops-${crypto.randomUUID()}`;
    await publish(meshOfTwoHops(key));
    const response = await callHttp("orders.mesh", "/orders?amount=3", {
      headers: { "x-mesh-retry": "off" },
    });
    expect(response.status).toBe(502);
    expect(((await response.json()) as Order).payment.seen).toBe(1);
  });

  it("the trace and the request id cross orders too", async () => {
    const key = `hops-${crypto.randomUUID()}`;
    await publish(meshOfTwoHops(key));
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const response = await callHttp("orders.mesh", "/orders?amount=3", {
      headers: {
        "x-mesh-retry": "off",
        "x-request-id": "hops-request-1",
        traceparent: `00-${traceId}-00f067aa0ba902b7-01`,
      },
    });
    const headers = ((await response.json()) as Order).payment.headers;
    expect(headers["x-request-id"]).toBe("hops-request-1");
    // The same trace, a span of the second router's own.
    expect(headers["traceparent"]).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    expect(headers["traceparent"]).not.toContain("00f067aa0ba902b7");
  });
});
