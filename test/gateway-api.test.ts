// Two Gateway API behaviours through the whole router, with the expectations of the Gateway API's
// own conformance tests for the same configurations:
//  - dangling backendRefs (HTTPRouteInvalidNonExistentBackendRef, HTTPRouteInvalidBackendRefUnknownKind,
//    HTTPRoutePartiallyInvalidViaInvalidReferenceGrant): the route is served; requests for the
//    invalid backend get 500, the other rules answer as usual;
//  - the CORS filter (HTTPRouteCORS, CORSAllowCredentialsBehavior).
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { seededRandom } from "../core/random.ts";
import { handleMeshCall } from "../workers/router/app.ts";
import { callHttp, httpRoute, publish, refresh, service, type Echoed } from "./helpers/mesh.ts";

const cors = (config: object) => ({ type: "CORS", cors: config });
const prefix = (value: string) => [{ path: { type: "PathPrefix", value } }];

beforeAll(async () => {
  await publish([
    service("echo", "ECHO_V1"),
    service("echo-v1", "ECHO_V1"),
    service("echo-v2", "ECHO_V2"),
    httpRoute("dangling", "echo", [
      { matches: prefix("/missing"), backendRefs: [{ name: "does-not-exist", port: 8080 }] },
      {
        matches: prefix("/v2"),
        backendRefs: [
          {
            group: "unknownkind.example.com",
            kind: "NonExistent",
            name: "web-backend",
            port: 8080,
          },
        ],
      },
      {
        matches: prefix("/half"),
        backendRefs: [
          { name: "echo-v2", weight: 1 },
          { name: "does-not-exist", weight: 1 },
        ],
      },
      { matches: prefix("/"), backendRefs: [{ name: "echo-v1", port: 80 }] },
    ]),
    service("web", "ECHO_V1"),
    httpRoute("cors", "web", [
      {
        matches: prefix("/cors-1"),
        filters: [
          cors({
            allowOrigins: ["https://www.foo.com", "https://*.bar.com"],
            allowMethods: ["GET", "OPTIONS"],
            allowHeaders: ["x-header-1", "x-header-2"],
            exposeHeaders: ["x-header-3", "x-header-4"],
            allowCredentials: true,
            maxAge: 3600,
          }),
        ],
        backendRefs: [{ name: "echo-v1" }],
      },
      {
        matches: prefix("/cors-2"),
        filters: [cors({ allowOrigins: ["https://www.foo.com"], allowMethods: ["*"] })],
        backendRefs: [{ name: "echo-v1" }],
      },
      {
        matches: prefix("/cors-wildcard-origin"),
        filters: [cors({ allowOrigins: ["*"], allowMethods: ["PUT"], allowCredentials: false })],
        backendRefs: [{ name: "echo-v1" }],
      },
      {
        matches: prefix("/cors-behavior-creds-false"),
        filters: [cors({ allowOrigins: ["https://app.example"], allowCredentials: false })],
        backendRefs: [{ name: "echo-v1" }],
      },
      {
        matches: prefix("/cors-behavior-creds-true"),
        filters: [cors({ allowOrigins: ["https://app.example"], allowCredentials: true })],
        backendRefs: [{ name: "echo-v1" }],
      },
    ]),
  ]);
});

describe("dangling backendRefs (Gateway API)", () => {
  it("answers 500 for a rule whose only backend is a missing Service", async () => {
    const response = await callHttp("echo", "/missing");
    expect(response.status).toBe(500);
    expect(response.headers.get("x-mesh-error")).toBe("no_backend");
    const body = (await response.json()) as { error: { message: string } };
    expect(body.error.message).toMatch(/Service 'does-not-exist' does not exist/);
  });

  it("answers 500 for a backendRef of an unknown kind", async () => {
    const response = await callHttp("echo", "/v2");
    expect(response.status).toBe(500);
    const body = (await response.json()) as { error: { message: string } };
    expect(body.error.message).toMatch(
      /NonExistent 'web-backend' \(group unknownkind.example.com\)/,
    );
  });

  it("serves the route's other rules", async () => {
    const response = await callHttp("echo", "/");
    expect(response.status).toBe(200);
    expect(((await response.json()) as Echoed).service).toBe("echo-v1");
  });

  it("answers 500 for the invalid backend's weighted share only (fixed seed)", async () => {
    const random = seededRandom(7);
    let failed = 0;
    const n = 400;
    for (let i = 0; i < n; i++) {
      const ctx = createExecutionContext();
      const response = await handleMeshCall(new Request("http://echo/half"), env, ctx, { random });
      await waitOnExecutionContext(ctx);
      if (response.status === 500) failed++;
      else expect(((await response.json()) as Echoed).service).toBe("echo-v2");
    }
    // Half of 400, within 5 standard deviations (±50).
    expect(failed).toBeGreaterThan(150);
    expect(failed).toBeLessThan(250);
  });

  it("lists the dangling references in status", async () => {
    await callHttp("echo", "/");
    const status = (await refresh()) as { destinations: Record<string, { warnings: string[] }> };
    expect(status.destinations.echo?.warnings).toEqual(
      expect.arrayContaining([
        "Service 'does-not-exist' does not exist",
        "NonExistent 'web-backend' (group unknownkind.example.com) is not a kind the mesh can send to (only Service)",
      ]),
    );
  });
});

function preflight(path: string, origin: string, method: string, requestHeaders?: string) {
  const headers: Record<string, string> = {
    origin,
    "access-control-request-method": method,
  };
  if (requestHeaders) headers["access-control-request-headers"] = requestHeaders;
  return callHttp("web", path, { method: "OPTIONS", headers });
}

describe("CORS filter (Gateway API HTTPRouteCORS)", () => {
  it("answers an allowed preflight itself, with every configured header, without calling the backend", async () => {
    for (const origin of [
      "https://www.foo.com",
      "https://www.bar.com",
      "https://xpto.www.bar.com",
    ]) {
      const response = await preflight("/cors-1", origin, "GET", "x-header-1, x-header-2");
      expect(response.status).toBe(200);
      expect(await response.text()).toBe(""); // not echo's JSON: the backend never saw it
      const h = response.headers;
      expect(h.get("access-control-allow-origin")).toBe(origin);
      expect(h.get("access-control-allow-methods")).toBe("GET, OPTIONS");
      expect(h.get("access-control-allow-headers")).toBe("x-header-1, x-header-2");
      expect(h.get("access-control-expose-headers")).toBe("x-header-3, x-header-4");
      expect(h.get("access-control-max-age")).toBe("3600");
      expect(h.get("access-control-allow-credentials")).toBe("true");
    }
  });

  it("answers a preflight from a disallowed origin without CORS headers", async () => {
    const response = await preflight("/cors-1", "https://foobar.com", "GET");
    expect([200, 204, 403]).toContain(response.status);
    expect(response.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("forwards a simple request and echoes an allowed origin exactly", async () => {
    for (const origin of ["https://www.foo.com", "https://www.bar.com"]) {
      const response = await callHttp("web", "/cors-1", { headers: { origin } });
      expect(response.status).toBe(200);
      expect(response.headers.get("access-control-allow-origin")).toBe(origin);
      expect(response.headers.get("vary")).toMatch(/Origin/);
      expect(((await response.json()) as Echoed).path).toBe("/cors-1");
    }
  });

  it("still forwards a request from a disallowed origin, with no CORS headers", async () => {
    const response = await callHttp("web", "/cors-1", {
      headers: { origin: "https://foobar.com" },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("access-control-allow-origin")).toBeNull();
    expect(((await response.json()) as Echoed).service).toBe("echo-v1");
  });

  it("with allowMethods '*', allows the requested method, and sends no credentials header", async () => {
    const response = await preflight("/cors-2", "https://www.foo.com", "POST");
    expect(response.headers.get("access-control-allow-methods")).toMatch(/^(POST|\*)$/);
    expect(response.headers.get("access-control-allow-origin")).toBe("https://www.foo.com");
    expect(response.headers.get("access-control-allow-credentials")).toBeNull();
  });

  it("with allowOrigins '*', allows any origin (ports included)", async () => {
    for (const origin of ["https://foobar.com", "https://foobar.com:12345"]) {
      const response = await preflight("/cors-wildcard-origin", origin, "PUT");
      expect(response.headers.get("access-control-allow-origin")).toMatch(
        new RegExp(`^(${origin.replace(/[.]/g, "\\.")}|\\*)$`),
      );
      expect(response.headers.get("access-control-allow-methods")).toBe("PUT");
      expect(response.headers.get("access-control-allow-credentials")).toBeNull();
      const actual = await callHttp("web", "/cors-wildcard-origin", {
        method: "PUT",
        headers: { origin },
      });
      expect(actual.status).toBe(200);
      expect(actual.headers.get("access-control-allow-origin")).toBeTruthy();
    }
  });

  it("says credentials are allowed only when allowCredentials is true (CORSAllowCredentialsBehavior)", async () => {
    const headers = {
      origin: "https://app.example",
      cookie: "sid=abc123",
      authorization: "Bearer test",
    };
    const off = await callHttp("web", "/cors-behavior-creds-false", { headers });
    expect(off.status).toBe(200);
    expect(off.headers.get("access-control-allow-credentials")).toBeNull();
    const on = await callHttp("web", "/cors-behavior-creds-true", { headers });
    expect(on.status).toBe(200);
    expect(on.headers.get("access-control-allow-credentials")).toBe("true");
    expect(on.headers.get("access-control-allow-origin")).toBe("https://app.example");
  });
});
