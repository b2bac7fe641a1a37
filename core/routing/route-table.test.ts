import { describe, expect, it } from "vitest";
import type { DestinationEntry } from "../config/snapshot.ts";
import { validateResources } from "../config/validate.ts";
import { compileRouteTable, matchRoute, type RouteTable } from "./route-table.ts";

function table(routes: object[], bindings = ["ECHO_V1", "ECHO_V2"]): RouteTable {
  const services = ["echo", "a", "b", "c", "d", "e", "f"].map((name) => ({
    apiVersion: "meshwork.dev/v1",
    kind: "Service",
    metadata: { name },
    spec: { endpoints: [{ binding: "ECHO_V1" }] },
  }));
  const result = validateResources([
    ...services,
    ...routes.map((r, i) => ({
      apiVersion: "gateway.networking.k8s.io/v1",
      kind: "HTTPRoute",
      metadata: { name: `route-${i}` },
      ...r,
      spec: { parentRefs: [{ name: "echo" }], ...(r as { spec: object }).spec },
    })),
  ]);
  if (!result.ok) throw new Error(JSON.stringify(result.issues));
  const entry: DestinationEntry = {
    schema: 1,
    service: result.value.services[0]!,
    routes: result.value.routes,
    backends: result.value.services.slice(1),
    policies: [],
    faults: [],
    authorization: [],
    peerAuthentication: [],
  };
  return compileRouteTable(entry, { hasBinding: (name) => bindings.includes(name) });
}

function pick(
  t: RouteTable,
  path: string,
  init: { method?: string; headers?: Record<string, string> } = {},
): string | undefined {
  const url = new URL(`http://echo${path}`);
  return matchRoute(t, {
    method: init.method ?? "GET",
    path: url.pathname,
    headers: new Headers(init.headers),
    query: url.searchParams,
  })?.rule.backends.items[0]?.name;
}

const to = (backend: string, matches?: object[]) => ({
  ...(matches ? { matches } : {}),
  backendRefs: [{ name: backend }],
});

describe("route matching", () => {
  it("matches each path type", () => {
    const t = table([
      {
        spec: {
          rules: [
            to("a", [{ path: { type: "Exact", value: "/exact" } }]),
            to("b", [{ path: { type: "PathPrefix", value: "/prefix" } }]),
            to("c", [{ path: { type: "RegularExpression", value: "/items/[0-9]+" } }]),
          ],
        },
      },
    ]);
    expect(pick(t, "/exact")).toBe("a");
    expect(pick(t, "/exact/more")).toBeUndefined();
    expect(pick(t, "/prefix/x")).toBe("b");
    expect(pick(t, "/prefixed")).toBeUndefined();
    expect(pick(t, "/items/42")).toBe("c");
    // Regular expressions match the whole path.
    expect(pick(t, "/items/42/x")).toBeUndefined();
  });

  it("matches headers (case-insensitive names) and query params, exact and regex", () => {
    const t = table([
      {
        spec: {
          rules: [
            to("a", [{ headers: [{ name: "X-Version", value: "v2" }] }]),
            to("b", [
              { headers: [{ type: "RegularExpression", name: "x-user", value: "beta-.*" }] },
            ]),
            to("c", [{ queryParams: [{ name: "debug", value: "1" }] }]),
            to("d", [
              { queryParams: [{ type: "RegularExpression", name: "id", value: "[a-f]+" }] },
            ]),
            to("e", [{ method: "DELETE" }]),
          ],
        },
      },
    ]);
    expect(pick(t, "/", { headers: { "x-version": "v2" } })).toBe("a");
    expect(pick(t, "/", { headers: { "x-version": "V2" } })).toBeUndefined();
    expect(pick(t, "/", { headers: { "X-User": "beta-7" } })).toBe("b");
    expect(pick(t, "/?debug=1")).toBe("c");
    expect(pick(t, "/?debug=2")).toBeUndefined();
    expect(pick(t, "/?id=cafe")).toBe("d");
    expect(pick(t, "/?id=cafe1")).toBeUndefined();
    expect(pick(t, "/", { method: "DELETE" })).toBe("e");
  });

  it("requires every condition of a match and any match of a rule", () => {
    const t = table([
      {
        spec: {
          rules: [
            to("a", [
              { path: { value: "/x" }, method: "POST", headers: [{ name: "h", value: "1" }] },
              { path: { value: "/y" } },
            ]),
          ],
        },
      },
    ]);
    expect(pick(t, "/x", { method: "POST", headers: { h: "1" } })).toBe("a");
    expect(pick(t, "/x", { method: "GET", headers: { h: "1" } })).toBeUndefined();
    expect(pick(t, "/x", { method: "POST" })).toBeUndefined();
    expect(pick(t, "/y/z")).toBe("a");
  });

  describe("precedence (Gateway API order)", () => {
    it("Exact beats RegularExpression beats PathPrefix", () => {
      const t = table([
        {
          spec: {
            rules: [
              to("c", [{ path: { type: "PathPrefix", value: "/api/users" } }]),
              to("b", [{ path: { type: "RegularExpression", value: "/api/.*" } }]),
              to("a", [{ path: { type: "Exact", value: "/api/users" } }]),
            ],
          },
        },
      ]);
      expect(pick(t, "/api/users")).toBe("a");
      expect(pick(t, "/api/users/1")).toBe("b");
    });

    it("the longest prefix wins, whatever the rule order", () => {
      const t = table([
        {
          spec: {
            rules: [
              to("a", [{ path: { value: "/" } }]),
              to("b", [{ path: { value: "/api" } }]),
              to("c", [{ path: { value: "/api/v2" } }]),
            ],
          },
        },
      ]);
      expect(pick(t, "/api/v2/x")).toBe("c");
      expect(pick(t, "/api/v1")).toBe("b");
      expect(pick(t, "/other")).toBe("a");
    });

    it("then a method match, then more headers, then more query params", () => {
      const t = table([
        {
          spec: {
            rules: [
              to("a", [{ path: { value: "/p" } }]),
              to("b", [{ path: { value: "/p" }, queryParams: [{ name: "q", value: "1" }] }]),
              to("c", [{ path: { value: "/p" }, headers: [{ name: "h", value: "1" }] }]),
              to("d", [
                {
                  path: { value: "/p" },
                  headers: [
                    { name: "h", value: "1" },
                    { name: "i", value: "1" },
                  ],
                },
              ]),
              to("e", [{ path: { value: "/p" }, method: "GET" }]),
            ],
          },
        },
      ]);
      expect(pick(t, "/p?q=1", { headers: { h: "1", i: "1" } })).toBe("e");
      expect(pick(t, "/p?q=1", { method: "POST", headers: { h: "1", i: "1" } })).toBe("d");
      expect(pick(t, "/p?q=1", { method: "POST", headers: { h: "1" } })).toBe("c");
      expect(pick(t, "/p?q=1", { method: "POST" })).toBe("b");
      expect(pick(t, "/p", { method: "POST" })).toBe("a");
    });

    it("ties across routes go to the oldest route, then alphabetical order", () => {
      const rule = (backend: string) => ({
        spec: { rules: [to(backend, [{ path: { value: "/" } }])] },
      });
      const byAge = table([
        { ...rule("a"), metadata: { name: "zeta", creationTimestamp: "2026-01-01T00:00:00Z" } },
        { ...rule("b"), metadata: { name: "alpha", creationTimestamp: "2026-02-01T00:00:00Z" } },
      ]);
      expect(pick(byAge, "/")).toBe("a");
      const byName = table([
        { ...rule("a"), metadata: { name: "zeta" } },
        { ...rule("b"), metadata: { name: "alpha" } },
      ]);
      expect(pick(byName, "/")).toBe("b");
    });

    it("ties within a route go to the first rule", () => {
      const t = table([
        {
          spec: {
            rules: [to("a", [{ path: { value: "/" } }]), to("b", [{ path: { value: "/" } }])],
          },
        },
      ]);
      expect(pick(t, "/")).toBe("a");
    });
  });

  it("a rule without matches matches everything (PathPrefix /)", () => {
    const t = table([{ spec: { rules: [to("a")] } }]);
    expect(pick(t, "/anything/at/all", { method: "PATCH" })).toBe("a");
  });

  it("warns about endpoints whose binding the router lacks", () => {
    const t = table([], []);
    expect(t.warnings.some((w) => w.includes("no service binding 'ECHO_V1'"))).toBe(true);
    expect(t.defaultRule.backends.items[0]!.service!.endpoints.total).toBe(0);
  });

  it("compiles timeouts and session persistence", () => {
    const t = table([
      {
        spec: {
          rules: [
            {
              ...to("a"),
              timeouts: { request: "2s", backendRequest: "500ms" },
              sessionPersistence: { type: "Header", sessionName: "X-User" },
            },
          ],
        },
      },
    ]);
    const rule = t.matches[0]!.rule;
    expect(rule.backends.items[0]!.policy).toMatchObject({
      requestTimeoutMs: 2000,
      backendTimeoutMs: 500,
      autoTimeout: undefined,
      retry: undefined,
    });
    expect(rule.session).toEqual({
      type: "Header",
      name: "x-user",
      cookieMaxAgeSeconds: undefined,
    });
  });
});

describe("BackendPolicy precedence", () => {
  it("applies the oldest policy targeting a Service, as the Gateway API resolves conflicts", () => {
    const policy = (name: string, created: string | undefined, consecutiveFailures: number) => ({
      apiVersion: "meshwork.dev/v1",
      kind: "BackendPolicy",
      metadata: { name, ...(created ? { creationTimestamp: created } : {}) },
      spec: {
        targetRefs: [{ kind: "Service", name: "echo" }],
        circuitBreaker: { consecutiveFailures },
      },
    });
    const result = validateResources([
      {
        apiVersion: "meshwork.dev/v1",
        kind: "Service",
        metadata: { name: "echo" },
        spec: { endpoints: [{ binding: "ECHO_V1" }] },
      },
      policy("a-newer", "2026-06-01T00:00:00Z", 3),
      policy("b-older", "2026-01-01T00:00:00Z", 7),
      policy("c-undated", undefined, 9),
    ]);
    if (!result.ok) throw new Error(JSON.stringify(result.issues));
    const t = compileRouteTable(
      {
        schema: 1,
        service: result.value.services[0]!,
        routes: [],
        backends: [],
        policies: result.value.policies,
        faults: [],
        authorization: [],
        peerAuthentication: [],
      },
      { hasBinding: () => true },
    );
    const own = t.defaultRule.backends.items[0]!.service!;
    expect(own.policy.names).toEqual(["b-older"]);
    expect(own.policy.breaker?.consecutiveFailures).toBe(7);
  });
});
