// Service endpoints outside Workers (hybrid workloads): the router sends to a URL, appending
// the request path to the endpoint's base path, and balances across mixed endpoints. (An
// unreachable one is tested over real HTTP in test/http/, where workerd's log of the refused
// connection stays out of the test output.)
import { describe, expect, inject, it } from "vitest";
import { callHttp, publish, type Echoed } from "./helpers/mesh.ts";

describe("URL endpoints", () => {
  it("forwards to an external workload under its base path, and mixes with bindings", async () => {
    const base = `http://127.0.0.1:${inject("externalPort")}/base`;
    await publish([
      {
        apiVersion: "meshwork.dev/v1",
        kind: "Service",
        metadata: { name: "legacy" },
        spec: { endpoints: [{ url: base }] },
      },
      {
        apiVersion: "meshwork.dev/v1",
        kind: "Service",
        metadata: { name: "mixed" },
        spec: { endpoints: [{ url: base }, { binding: "ECHO_V1" }] },
      },
    ]);
    const response = await callHttp("legacy", "/orders/7?full=1", { method: "POST", body: "hi" });
    expect(response.status).toBe(200);
    const body = (await response.json()) as Echoed;
    expect(body.service).toBe("external");
    expect(body.path).toBe("/base/orders/7");
    expect(body.query).toEqual({ full: "1" });
    expect(body.body).toBe("hi");
    expect(body.headers["x-request-id"]).toBeTruthy();

    const seen = new Set<string>();
    for (let i = 0; i < 60 && seen.size < 2; i++) {
      seen.add(((await (await callHttp("mixed", "/")).json()) as Echoed).service);
    }
    expect(seen).toEqual(new Set(["external", "echo-v1"]));
  });
});
