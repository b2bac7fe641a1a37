// HTTPRoute behaviour through the whole router in workerd: every match type, precedence across
// routes, every filter (rule- and backend-level), timeouts and the route-level errors.
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { callHttp, httpRoute, publish, service, type Echoed } from "./helpers/mesh.ts";

async function echoed(response: Response): Promise<Echoed> {
  expect(response.status).toBe(200);
  return (await response.json()) as Echoed;
}

async function served(host: string, path: string, init: RequestInit = {}): Promise<string> {
  return (await echoed(await callHttp(host, path, init))).service;
}

/** A rule that answers from echo-v1 and tags the response with its name. */
function tagged(name: string, match: object) {
  return {
    name,
    matches: [match],
    filters: [
      {
        type: "ResponseHeaderModifier",
        responseHeaderModifier: { set: [{ name: "x-rule", value: name }] },
      },
    ],
    backendRefs: [{ name: "echo-v1" }],
  };
}

beforeAll(async () => {
  await publish([
    service("echo", "ECHO_V1"),
    service("echo-v1", "ECHO_V1"),
    service("echo-v2", "ECHO_V2"),
    service("echo-v3", "ECHO_V3"),
    service("recorder", "RECORDER"),
    service("matches", "ECHO_V1"),
    service("filters", "ECHO_V1"),
    service("errors", "ECHO_V1"),
    service("precedence", "ECHO_V1"),
    httpRoute("matches-main", "matches", [
      {
        matches: [{ path: { type: "Exact", value: "/exact" } }],
        backendRefs: [{ name: "echo-v1" }],
      },
      {
        matches: [{ path: { type: "PathPrefix", value: "/api" } }],
        backendRefs: [{ name: "echo-v2" }],
      },
      {
        matches: [{ path: { type: "RegularExpression", value: "/api/items/[0-9]+" } }],
        backendRefs: [{ name: "echo-v3" }],
      },
      {
        matches: [{ path: { value: "/api" }, headers: [{ name: "X-Canary", value: "yes" }] }],
        backendRefs: [{ name: "echo-v3" }],
      },
      {
        matches: [
          {
            path: { value: "/api" },
            headers: [{ type: "RegularExpression", name: "x-user", value: "beta-[0-9]+" }],
          },
        ],
        backendRefs: [{ name: "echo-v1" }],
      },
      {
        matches: [{ path: { value: "/q" }, queryParams: [{ name: "v", value: "3" }] }],
        backendRefs: [{ name: "echo-v3" }],
      },
      {
        matches: [
          {
            path: { value: "/q" },
            queryParams: [{ type: "RegularExpression", name: "v", value: "[12]" }],
          },
        ],
        backendRefs: [{ name: "echo-v2" }],
      },
      { matches: [{ path: { value: "/m" }, method: "POST" }], backendRefs: [{ name: "echo-v3" }] },
      { matches: [{ path: { value: "/m" } }], backendRefs: [{ name: "echo-v1" }] },
    ]),
    // Two routes on one parent with identical matches: the older wins.
    httpRoute(
      "matches-young",
      "matches",
      [{ matches: [{ path: { value: "/tie" } }], backendRefs: [{ name: "echo-v2" }] }],
      { creationTimestamp: "2026-06-01T00:00:00Z" },
    ),
    httpRoute(
      "matches-old",
      "matches",
      [{ matches: [{ path: { value: "/tie" } }], backendRefs: [{ name: "echo-v3" }] }],
      { creationTimestamp: "2026-01-01T00:00:00Z" },
    ),
    httpRoute("filters-main", "filters", [
      {
        matches: [{ path: { value: "/headers" } }],
        filters: [
          {
            type: "RequestHeaderModifier",
            requestHeaderModifier: {
              set: [{ name: "x-set", value: "set-by-mesh" }],
              add: [{ name: "x-add", value: "added" }],
              remove: ["x-remove-me"],
            },
          },
          {
            type: "ResponseHeaderModifier",
            responseHeaderModifier: {
              set: [{ name: "x-echo-service", value: "hidden" }],
              add: [{ name: "x-served-by", value: "mesh" }],
            },
          },
        ],
        backendRefs: [{ name: "echo-v1" }],
      },
      {
        matches: [{ path: { value: "/old" } }],
        filters: [
          {
            type: "URLRewrite",
            urlRewrite: {
              hostname: "rewritten.internal",
              path: { type: "ReplacePrefixMatch", replacePrefixMatch: "/new" },
            },
          },
        ],
        backendRefs: [{ name: "echo-v2" }],
      },
      {
        matches: [{ path: { value: "/full" } }],
        filters: [
          {
            type: "URLRewrite",
            urlRewrite: { path: { type: "ReplaceFullPath", replaceFullPath: "/replaced" } },
          },
        ],
        backendRefs: [{ name: "echo-v2" }],
      },
      {
        matches: [{ path: { value: "/moved" } }],
        filters: [
          {
            type: "RequestRedirect",
            requestRedirect: {
              scheme: "https",
              hostname: "new.example.com",
              path: { type: "ReplacePrefixMatch", replacePrefixMatch: "/here" },
              statusCode: 301,
            },
          },
        ],
      },
      ...[302, 303, 307, 308].map((code) => ({
        matches: [{ path: { type: "Exact", value: `/redirect-${code}` } }],
        filters: [{ type: "RequestRedirect", requestRedirect: { port: 8443, statusCode: code } }],
      })),
      {
        matches: [{ path: { value: "/mirror-none" } }],
        filters: [
          {
            type: "RequestMirror",
            requestMirror: { backendRef: { name: "recorder" }, percent: 0 },
          },
        ],
        backendRefs: [{ name: "echo-v1" }],
      },
      {
        matches: [{ path: { value: "/mirror" } }],
        filters: [{ type: "RequestMirror", requestMirror: { backendRef: { name: "recorder" } } }],
        backendRefs: [{ name: "echo-v1" }],
      },
      {
        matches: [{ path: { value: "/mirror-retry" } }],
        filters: [{ type: "RequestMirror", requestMirror: { backendRef: { name: "recorder" } } }],
        backendRefs: [{ name: "echo-v1" }],
        retry: { codes: [500], attempts: 2, backoff: "1ms" },
      },
      {
        matches: [{ path: { value: "/backend-filters" } }],
        backendRefs: [
          {
            name: "echo-v3",
            filters: [
              {
                type: "RequestHeaderModifier",
                requestHeaderModifier: { set: [{ name: "x-backend", value: "v3-only" }] },
              },
              {
                type: "ResponseHeaderModifier",
                responseHeaderModifier: { add: [{ name: "x-backend-response", value: "v3" }] },
              },
              {
                type: "URLRewrite",
                urlRewrite: { path: { type: "ReplacePrefixMatch", replacePrefixMatch: "/v3" } },
              },
              { type: "RequestMirror", requestMirror: { backendRef: { name: "recorder" } } },
            ],
          },
        ],
      },
    ]),
    // Every rule matches /p; response tags say which one won.
    httpRoute("precedence-main", "precedence", [
      tagged("prefix", { path: { value: "/p" } }),
      tagged("one-query", { path: { value: "/p" }, queryParams: [{ name: "q", value: "1" }] }),
      tagged("two-queries", {
        path: { value: "/p" },
        queryParams: [
          { name: "q", value: "1" },
          { name: "r", value: "1" },
        ],
      }),
      tagged("one-header", { path: { value: "/p" }, headers: [{ name: "h", value: "1" }] }),
      tagged("method", { path: { value: "/p" }, method: "PUT" }),
      tagged("longer-prefix", { path: { value: "/p/deeper" } }),
    ]),
    httpRoute("errors-main", "errors", [
      { matches: [{ path: { value: "/zero" } }], backendRefs: [{ name: "echo-v1", weight: 0 }] },
      { matches: [{ path: { value: "/none" } }] },
      {
        matches: [{ path: { value: "/slow-backend" } }],
        backendRefs: [{ name: "echo-v1" }],
        timeouts: { backendRequest: "100ms" },
      },
      {
        matches: [{ path: { value: "/slow-request" } }],
        backendRefs: [{ name: "echo-v1" }],
        timeouts: { request: "150ms" },
      },
      {
        matches: [{ path: { value: "/fast-enough" } }],
        backendRefs: [{ name: "echo-v1" }],
        timeouts: { request: "5s", backendRequest: "2s" },
      },
    ]),
  ]);
});

describe("match types", () => {
  it("Exact, PathPrefix and RegularExpression paths", async () => {
    expect(await served("matches", "/exact")).toBe("echo-v1");
    expect(await served("matches", "/api/users")).toBe("echo-v2");
    expect(await served("matches", "/api/items/17")).toBe("echo-v3");
    // PathPrefix matches whole segments: /apix is not under /api.
    const miss = await callHttp("matches", "/apix");
    expect(miss.status).toBe(404);
    expect(miss.headers.get("x-mesh-error")).toBe("no_route");
  });

  it("headers, exact and regular expression", async () => {
    expect(await served("matches", "/api/x", { headers: { "x-canary": "yes" } })).toBe("echo-v3");
    expect(await served("matches", "/api/x", { headers: { "X-User": "beta-12" } })).toBe("echo-v1");
    expect(await served("matches", "/api/x", { headers: { "X-User": "beta-x" } })).toBe("echo-v2");
  });

  it("query params, exact and regular expression", async () => {
    expect(await served("matches", "/q?v=3")).toBe("echo-v3");
    expect(await served("matches", "/q?v=1")).toBe("echo-v2");
    expect((await callHttp("matches", "/q?v=9")).status).toBe(404);
  });

  it("method", async () => {
    expect(await served("matches", "/m", { method: "POST", body: "x" })).toBe("echo-v3");
    expect(await served("matches", "/m")).toBe("echo-v1");
  });
});

describe("precedence", () => {
  it("Exact beats RegularExpression beats the longest PathPrefix", async () => {
    expect(await served("matches", "/exact")).toBe("echo-v1");
    expect(await served("matches", "/api/items/3")).toBe("echo-v3");
  });

  it("more header matches beat fewer, whatever the rule order", async () => {
    // Both the plain /api rule and the header rule match; the header rule is more specific.
    expect(await served("matches", "/api", { headers: { "x-canary": "yes" } })).toBe("echo-v3");
  });

  it("then a method, then more headers, then more query params", async () => {
    const rule = async (path: string, init: RequestInit = {}) =>
      (await callHttp("precedence", path, init)).headers.get("x-rule");
    const everything = { method: "PUT", headers: { h: "1" }, body: "x" };
    expect(await rule("/p?q=1&r=1", everything)).toBe("method");
    expect(await rule("/p?q=1&r=1", { headers: { h: "1" } })).toBe("one-header");
    expect(await rule("/p?q=1&r=1")).toBe("two-queries");
    expect(await rule("/p?q=1")).toBe("one-query");
    expect(await rule("/p")).toBe("prefix");
    // The longer path beats every condition count.
    expect(await rule("/p/deeper?q=1&r=1", everything)).toBe("longer-prefix");
  });

  it("a tie across routes goes to the oldest route", async () => {
    expect(await served("matches", "/tie")).toBe("echo-v3");
  });
});

describe("filters", () => {
  it("RequestHeaderModifier and ResponseHeaderModifier", async () => {
    const response = await callHttp("filters", "/headers", {
      headers: { "x-set": "caller", "x-add": "caller", "x-remove-me": "1" },
    });
    const body = await echoed(response);
    expect(body.headers["x-set"]).toBe("set-by-mesh");
    expect(body.headers["x-add"]).toBe("caller, added");
    expect(body.headers["x-remove-me"]).toBeUndefined();
    expect(response.headers.get("x-echo-service")).toBe("hidden");
    expect(response.headers.get("x-served-by")).toBe("mesh");
  });

  it("URLRewrite: hostname and ReplacePrefixMatch", async () => {
    const body = await echoed(await callHttp("filters", "/old/thing?x=1"));
    expect(body.service).toBe("echo-v2");
    expect(body.path).toBe("/new/thing");
    expect(body.query).toEqual({ x: "1" });
    expect(body.host).toBe("rewritten.internal");
  });

  it("URLRewrite: ReplaceFullPath", async () => {
    expect((await echoed(await callHttp("filters", "/full/a/b"))).path).toBe("/replaced");
  });

  it("RequestRedirect with scheme, hostname, prefix path and 301", async () => {
    const response = await callHttp("filters", "/moved/page?x=1", { redirect: "manual" });
    expect(response.status).toBe(301);
    expect(response.headers.get("location")).toBe("https://new.example.com/here/page?x=1");
  });

  it("RequestRedirect status codes 302, 303, 307 and 308 with a port", async () => {
    for (const code of [302, 303, 307, 308]) {
      const response = await callHttp("filters", `/redirect-${code}`, { redirect: "manual" });
      expect(response.status).toBe(code);
      expect(response.headers.get("location")).toBe(`http://filters:8443/redirect-${code}`);
    }
  });

  it("RequestMirror sends a copy (body included) and answers from the real backend", async () => {
    const requestId = `mirror-${crypto.randomUUID()}`;
    const response = await callHttp("filters", "/mirror/path", {
      method: "POST",
      body: "payload",
      headers: { "x-request-id": requestId, "x-mesh-backend": "echo-v2" },
    });
    const body = await echoed(response);
    expect(body.service).toBe("echo-v1");
    expect(body.body).toBe("payload");
    const recorded = await waitForRecording(requestId);
    expect(recorded.path).toBe("/mirror/path");
    expect(recorded.body).toBe("payload");
    expect(recorded.method).toBe("POST");
    // The mesh's own pin header goes to no destination, mirrors included.
    expect(recorded.headers["x-mesh-backend"]).toBeUndefined();
  });

  it("RequestMirror and a retry share one body: the mirror gets it, and the retry sends it again", async () => {
    const requestId = `mirror-retry-${crypto.randomUUID()}`;
    const payload = "payload-".repeat(1000);
    const response = await callHttp("filters", "/mirror-retry", {
      method: "PUT",
      body: payload,
      headers: {
        "x-request-id": requestId,
        "x-echo-key": requestId,
        "x-echo-fail-times": "1",
        "x-echo-status": "500",
      },
    });
    const body = await echoed(response);
    expect(body.seen).toBe(2); // the first try failed, the retry carried the body whole
    expect(body.body).toBe(payload);
    const recorded = await waitForRecording(requestId);
    expect(recorded.body).toBe(payload);
    expect(recorded.method).toBe("PUT");
  });

  it("RequestMirror at 0 percent sends nothing", async () => {
    const requestId = `mirror-none-${crypto.randomUUID()}`;
    await echoed(
      await callHttp("filters", "/mirror-none", { headers: { "x-request-id": requestId } }),
    );
    // Give a mirror time to arrive if one (wrongly) was sent.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await env.RECORDINGS.get(`recorded/${requestId}`)).toBeNull();
  });

  it("backendRef filters apply when that backend is chosen", async () => {
    const requestId = `backend-${crypto.randomUUID()}`;
    const response = await callHttp("filters", "/backend-filters/x", {
      headers: { "x-request-id": requestId },
    });
    const body = await echoed(response);
    expect(body.service).toBe("echo-v3");
    expect(body.headers["x-backend"]).toBe("v3-only");
    expect(body.path).toBe("/v3/x");
    expect(response.headers.get("x-backend-response")).toBe("v3");
    expect((await waitForRecording(requestId)).path).toBe("/v3/x");
  });
});

describe("route errors and timeouts", () => {
  async function errorOf(response: Response) {
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(response.headers.get("x-mesh-error")).toBe(body.error.code);
    return { status: response.status, ...body.error };
  }

  it("weight 0 only, or no backendRefs: no_backend 500", async () => {
    expect(await errorOf(await callHttp("errors", "/zero"))).toMatchObject({
      status: 500,
      code: "no_backend",
    });
    expect(await errorOf(await callHttp("errors", "/none"))).toMatchObject({
      status: 500,
      code: "no_backend",
    });
  });

  it("routes attached but none matching: no_route 404", async () => {
    expect(await errorOf(await callHttp("errors", "/elsewhere"))).toMatchObject({
      status: 404,
      code: "no_route",
    });
  });

  it("timeouts.backendRequest cuts a slow backend with upstream_timeout 504", async () => {
    const started = Date.now();
    const response = await callHttp("errors", "/slow-backend", {
      headers: { "x-echo-delay-ms": "3000" },
    });
    expect(await errorOf(response)).toMatchObject({ status: 504, code: "upstream_timeout" });
    expect(Date.now() - started).toBeLessThan(2500);
  });

  it("timeouts.request cuts the whole call with upstream_timeout 504", async () => {
    const response = await callHttp("errors", "/slow-request", {
      headers: { "x-echo-delay-ms": "3000" },
    });
    expect(await errorOf(response)).toMatchObject({ status: 504, code: "upstream_timeout" });
  });

  it("a backend within its timeouts answers normally", async () => {
    const response = await callHttp("errors", "/fast-enough", {
      headers: { "x-echo-delay-ms": "20" },
    });
    expect(response.status).toBe(200);
  });

  it("passes the destination's own error statuses through untouched", async () => {
    const response = await callHttp("echo", "/", { headers: { "x-echo-status": "503" } });
    expect(response.status).toBe(503);
    expect(response.headers.get("x-mesh-error")).toBeNull();
  });
});

async function waitForRecording(requestId: string): Promise<Echoed> {
  for (let i = 0; i < 50; i++) {
    const text = await env.RECORDINGS.get(`recorded/${requestId}`);
    if (text) return JSON.parse(text) as Echoed;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`no mirrored request ${requestId} arrived`);
}
