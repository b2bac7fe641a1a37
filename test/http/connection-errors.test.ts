// Retries of connection failures, on the workerd binary (HTTPRouteRetryConnectionError): one
// endpoint of the Service refuses connections, the other answers; a retry reaches the healthy
// one. (Here rather than in the workerd test pool, whose log would fill with the refused
// connections.)
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rawRequest, startWorkerdMesh, type WorkerdMesh } from "./workerd-mesh.ts";

let mesh: WorkerdMesh | undefined;

beforeAll(async () => {
  mesh = await startWorkerdMesh([
    {
      apiVersion: "meshwork.dev/v1",
      kind: "Service",
      metadata: { name: "half-broken" },
      // Port 9 on loopback: nothing listens, the connection is refused.
      spec: { endpoints: [{ url: "http://127.0.0.1:9" }, { binding: "ECHO_V1" }] },
    },
    {
      apiVersion: "gateway.networking.k8s.io/v1",
      kind: "HTTPRoute",
      metadata: { name: "half-broken" },
      spec: {
        parentRefs: [{ name: "half-broken" }],
        rules: [{ backendRefs: [{ name: "half-broken" }], retry: { attempts: 100 } }],
      },
    },
    {
      apiVersion: "meshwork.dev/v1",
      kind: "Service",
      metadata: { name: "gone" },
      spec: { endpoints: [{ url: "http://127.0.0.1:9" }] },
    },
    {
      apiVersion: "gateway.networking.k8s.io/v1",
      kind: "HTTPRoute",
      metadata: { name: "gone" },
      spec: {
        parentRefs: [{ name: "gone" }],
        rules: [{ backendRefs: [{ name: "gone" }], retry: { attempts: 2 } }],
      },
    },
  ]);
}, 60_000);

afterAll(async () => {
  await mesh?.stop();
});

const get = (host: string) => rawRequest(mesh!.port, `GET / HTTP/1.1\r\nHost: ${host}`);

describe("retry on connection errors (Gateway API HTTPRouteRetryConnectionError)", () => {
  it("every call reaches the healthy endpoint: a refused connection is tried again elsewhere", async () => {
    for (let i = 0; i < 20; i++) {
      const response = await get("half-broken");
      expect(response.status).toBe(200);
      expect(response.headers.get("x-echo-service")).toBe("echo-v1");
    }
  });

  it("with no healthy endpoint, the retries end in upstream_error", async () => {
    const response = await get("gone");
    expect(response.status).toBe(502);
    expect(response.headers.get("x-mesh-error")).toBe("upstream_error");
  });
});
