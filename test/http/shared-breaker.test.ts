// Two routers, one set of Durable Objects: the circuit breaker state one router learns reaches
// the other within one report. Two router services on the workerd binary — two isolates that share
// nothing but the BackendState namespace, as router isolates in different locations do.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rawRequest, startWorkerdMesh, type WorkerdMesh } from "./workerd-mesh.ts";

let mesh: WorkerdMesh | undefined;

beforeAll(async () => {
  mesh = await startWorkerdMesh(
    [
      {
        apiVersion: "meshwork.dev/v1",
        kind: "Service",
        metadata: { name: "flaky" },
        spec: { endpoints: [{ binding: "ECHO_V1" }] },
      },
      {
        apiVersion: "meshwork.dev/v1",
        kind: "BackendPolicy",
        metadata: { name: "flaky" },
        spec: {
          targetRefs: [{ kind: "Service", name: "flaky" }],
          circuitBreaker: { consecutiveFailures: 5, baseOpenTime: "30s", openJitter: 0 },
        },
      },
    ],
    {},
    { routers: 2 },
  );
}, 60_000);

afterAll(async () => {
  await mesh?.stop();
});

const call = (port: number, status: number) =>
  rawRequest(port, `GET / HTTP/1.1\r\nHost: flaky\r\nX-Echo-Status: ${status}`);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("a circuit breaker every router sees", () => {
  it("a second router that has seen no failure refuses the open backend after one report", async () => {
    const { port, secondPort } = mesh!;
    // Router A sees five 500s and trips at once.
    for (let i = 0; i < 5; i++) expect((await call(port, 500)).status).toBe(500);
    expect((await call(port, 200)).headers.get("x-mesh-error")).toBe("circuit_open");
    // Its reports reach the backend's object within about a second.
    await sleep(1500);
    // Router B has seen nothing: its first call goes through, and its report brings the
    // mesh-wide state back.
    const first = await call(secondPort!, 200);
    expect(first.status).toBe(200);
    let calls = 1;
    let refused = false;
    for (; calls < 40 && !refused; calls++) {
      await sleep(50);
      refused = (await call(secondPort!, 200)).headers.get("x-mesh-error") === "circuit_open";
    }
    expect(refused).toBe(true);
    // One report is one round trip: B refuses within a few calls, not after failures of its own.
    expect(calls).toBeLessThan(10);
  });
});
