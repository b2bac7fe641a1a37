// What the router does to every call's headers and body: request ids, trace context, identity
// header stripping, hop-by-hop headers, streaming, and the reserved /.mesh/ prefix.
import { beforeAll, describe, expect, it } from "vitest";
import { callAs, callHttp, publish, service, type Echoed } from "./helpers/mesh.ts";
import { ADMIN_HEADERS } from "./helpers/open-mesh.ts";

const TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

beforeAll(async () => {
  await publish([service("echo", "ECHO_V1")]);
});

async function echo(init: RequestInit = {}, host = "echo", path = "/"): Promise<Echoed> {
  const response = await callHttp(host, path, init);
  expect(response.status).toBe(200);
  return (await response.json()) as Echoed;
}

describe("request id and trace context", () => {
  it("continues the caller's X-Request-Id and traceparent with a new span", async () => {
    const body = await echo({
      headers: { "x-request-id": "req-123", traceparent: TRACEPARENT, tracestate: "vendor=1" },
    });
    expect(body.headers["x-request-id"]).toBe("req-123");
    const [version, traceId, spanId, flags] = body.headers.traceparent!.split("-");
    expect([version, traceId, flags]).toEqual(["00", "0af7651916cd43dd8448eb211c80319c", "01"]);
    expect(spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(spanId).not.toBe("b7ad6b7169203331");
    expect(body.headers.tracestate).toBe("vendor=1");
  });

  it("starts both when the caller sent none (and drops an orphaned tracestate)", async () => {
    const body = await echo({ headers: { tracestate: "vendor=1" } });
    expect(body.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(body.headers.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(body.headers.tracestate).toBeUndefined();
  });

  it("puts the request id on the mesh's own error responses", async () => {
    const response = await callHttp("nowhere", "/", { headers: { "x-request-id": "req-err" } });
    expect(response.headers.get("x-request-id")).toBe("req-err");
  });
});

describe("identity headers", () => {
  const forged = {
    "x-mesh-caller": "spiffe://meshwork.local/admin",
    "x-forwarded-client-cert": "By=spiffe://x;Hash=00",
    "x-mesh-passport": "forged.jwt.token",
  };

  it("strips identity headers a caller sends over HTTP", async () => {
    const body = await echo({ headers: forged });
    expect(body.headers["x-mesh-caller"]).toBeUndefined();
    expect(body.headers["x-forwarded-client-cert"]).toBeUndefined();
    expect(body.headers["x-mesh-passport"]).toBeUndefined();
  });

  it("replaces them with the caller a service binding attests", async () => {
    const response = await callAs("orders", "echo", "/", { headers: forged });
    const body = (await response.json()) as Echoed;
    expect(body.headers["x-mesh-caller"]).toBe("spiffe://meshwork.local/orders");
    expect(body.headers["x-forwarded-client-cert"]).toBe(
      "By=spiffe://meshwork.local/echo;URI=spiffe://meshwork.local/orders",
    );
    // The mesh's own passport (signed with a key the identity Worker certified), not the forgery.
    expect(body.headers["x-mesh-passport"]).toMatch(/^eyJ/);
  });
});

describe("proxy hygiene", () => {
  it("drops hop-by-hop headers, including those Connection names", async () => {
    const body = await echo({
      headers: {
        connection: "x-hop, keep-alive",
        "x-hop": "1",
        "keep-alive": "timeout=5",
        "x-kept": "1",
      },
    });
    expect(body.headers["x-hop"]).toBeUndefined();
    expect(body.headers["keep-alive"]).toBeUndefined();
    expect(body.headers.connection).toBeUndefined();
    expect(body.headers["x-kept"]).toBe("1");
  });

  it("streams a large request body through", async () => {
    const payload = "x".repeat(1024 * 1024);
    const stream = new Blob([payload]).stream();
    const body = await echo({ method: "PUT", body: stream });
    expect(body.body.length).toBe(payload.length);
  });

  it("routes by the Host's first label, with or without port and suffix", async () => {
    expect((await echo({}, "echo:8787")).service).toBe("echo-v1");
    expect((await echo({}, "echo.mesh.internal")).service).toBe("echo-v1");
  });

  it("reserves /.mesh/ on every host", async () => {
    const response = await callHttp("echo", "/.mesh/anything");
    expect(response.status).toBe(404);
    expect(response.headers.get("x-mesh-error")).toBe("no_route");
    expect(((await response.json()) as { error: { message: string } }).error.message).toMatch(
      /unknown mesh endpoint/,
    );
    const status = await callHttp("echo", "/.mesh/status", { headers: ADMIN_HEADERS });
    expect(((await status.json()) as { version: number }).version).toBeGreaterThan(0);
  });
});

describe("WebSockets", () => {
  it("carries a WebSocket upgrade through both entries to the destination", async () => {
    const upgrade = { headers: { upgrade: "websocket" } };
    for (const response of [
      await callHttp("echo", "/ws", upgrade),
      await callAs("orders", "echo", "/ws", upgrade),
    ]) {
      expect(response.status).toBe(101);
      const socket = response.webSocket!;
      socket.accept();
      const reply = new Promise<string>((resolve) =>
        socket.addEventListener("message", (event) => resolve(String(event.data))),
      );
      socket.send("hello");
      expect(await reply).toBe("echo-v1: hello");
      socket.close();
    }
  });
});
