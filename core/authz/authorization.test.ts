import { describe, expect, it } from "vitest";
import { AuthorizationPolicyResource } from "../config/identity-schema.ts";
import {
  authorize,
  compileAuthorization,
  type AuthorizationDecision,
  type AuthorizationRequest,
  type DefaultAuthorizationAction,
} from "./authorization.ts";

const ORDERS = "spiffe://meshwork.local/orders";
const BILLING = "spiffe://meshwork.local/billing";
const PARTNER_ORDERS = "spiffe://partner.example/orders";

interface PolicyOptions {
  action?: "ALLOW" | "DENY" | "AUDIT";
  dryRun?: boolean;
  created?: string;
}

/** A policy as the router gets it: through the schema, so every test input is a valid one. */
function policy(name: string, rules: object[], options: PolicyOptions = {}) {
  return AuthorizationPolicyResource.parse({
    apiVersion: "meshwork.dev/v1",
    kind: "AuthorizationPolicy",
    metadata: {
      name,
      ...(options.created === undefined ? {} : { creationTimestamp: options.created }),
    },
    spec: { action: options.action ?? "ALLOW", rules, dryRun: options.dryRun ?? false },
  });
}

const deny = (name: string, rules: object[], options: PolicyOptions = {}) =>
  policy(name, rules, { ...options, action: "DENY" });
const audit = (name: string, rules: object[], options: PolicyOptions = {}) =>
  policy(name, rules, { ...options, action: "AUDIT" });

function call(overrides: Partial<AuthorizationRequest> = {}): AuthorizationRequest {
  return {
    principal: ORDERS,
    method: "GET",
    path: "/",
    headers: new Headers(),
    ...overrides,
  };
}

function decide(
  policies: ReturnType<typeof policy>[],
  request: Partial<AuthorizationRequest>,
  defaultAction: DefaultAuthorizationAction = "DENY",
): AuthorizationDecision {
  return authorize(compileAuthorization(policies, defaultAction), call(request));
}

/** Whether one ALLOW policy with `rule` (and a mesh default of DENY) lets the call through. */
function ruleAllows(rule: object, request: Partial<AuthorizationRequest>): boolean {
  return decide([policy("under-test", [rule])], request).allowed;
}

describe("decision order", () => {
  it("lets the mesh default decide when no policy applies", () => {
    expect(decide([], {}, "ALLOW")).toMatchObject({
      allowed: true,
      policy: undefined,
      reason: "mesh default ALLOW",
    });
    expect(decide([], {}, "DENY")).toMatchObject({
      allowed: false,
      policy: undefined,
      reason: "mesh default DENY",
    });
    expect(compileAuthorization([], "DENY").empty).toBe(true);
  });

  it("checks DENY policies before ALLOW ones", () => {
    const decision = decide([policy("allow-all", [{}]), deny("block-admin", [{}])], {}, "ALLOW");
    expect(decision).toMatchObject({
      allowed: false,
      policy: "block-admin",
      reason: "denied by DENY policy 'block-admin'",
    });
  });

  it("denies when ALLOW policies apply and none matches, whatever the default", () => {
    const allowBilling = policy("billing-only", [
      { from: [{ source: { principals: [BILLING] } }] },
    ]);
    const decision = decide([allowBilling], { principal: ORDERS }, "ALLOW");
    expect(decision).toMatchObject({
      allowed: false,
      policy: undefined,
      reason: "no ALLOW policy matched",
    });
    expect(decide([allowBilling], { principal: BILLING }, "DENY")).toMatchObject({
      allowed: true,
      policy: "billing-only",
      reason: "allowed by ALLOW policy 'billing-only'",
    });
  });

  it("lets the default decide calls no DENY policy matches when no ALLOW policy applies", () => {
    const blockPost = deny("no-post", [{ to: [{ operation: { methods: ["POST"] } }] }]);
    expect(decide([blockPost], { method: "GET" }, "ALLOW")).toMatchObject({
      allowed: true,
      reason: "mesh default ALLOW",
    });
    expect(decide([blockPost], { method: "GET" }, "DENY")).toMatchObject({
      allowed: false,
      reason: "mesh default DENY",
    });
  });

  it("reports the oldest matching policy, then the first by name, as the one that decided", () => {
    const policies = [
      deny("b-newer", [{}], { created: "2026-03-01T00:00:00Z" }),
      deny("z-older", [{}], { created: "2026-01-01T00:00:00+02:00" }),
      deny("c-no-timestamp", [{}]),
      deny("a-no-timestamp", [{}]),
    ];
    expect(decide(policies, {}).policy).toBe("a-no-timestamp");
    expect(decide(policies.slice(0, 2), {}).policy).toBe("z-older");
    expect(decide(policies.slice(0, 2).reverse(), {}).policy).toBe("z-older");
  });
});

describe("rules", () => {
  it("an ALLOW policy with no rules allows nothing (Istio's allow-nothing)", () => {
    const decision = decide([policy("allow-nothing", [])], {}, "ALLOW");
    expect(decision).toMatchObject({ allowed: false, reason: "no ALLOW policy matched" });
  });

  it("a DENY policy with no rules denies nothing", () => {
    expect(decide([deny("deny-nothing", [])], {}, "ALLOW").allowed).toBe(true);
  });

  it("an empty rule matches every call, unauthenticated ones too", () => {
    expect(ruleAllows({}, { principal: undefined, method: "DELETE", path: "/x" })).toBe(true);
  });

  it("matches a policy when any of its rules matches", () => {
    const rules = [
      { to: [{ operation: { methods: ["GET"] } }] },
      { from: [{ source: { principals: [BILLING] } }] },
    ];
    const allows = (request: Partial<AuthorizationRequest>) =>
      decide([policy("p", rules)], request).allowed;
    expect(allows({ method: "GET", principal: ORDERS })).toBe(true);
    expect(allows({ method: "POST", principal: BILLING })).toBe(true);
    expect(allows({ method: "POST", principal: ORDERS })).toBe(false);
  });

  it("ANDs from, to and when, and ORs the entries of from and to", () => {
    const rule = {
      from: [{ source: { principals: [ORDERS] } }, { source: { principals: [BILLING] } }],
      to: [{ operation: { methods: ["GET"] } }, { operation: { paths: ["/public/*"] } }],
      when: [{ key: "request.headers[x-tenant]", values: ["acme"] }],
    };
    const tenant = new Headers({ "x-tenant": "acme" });
    expect(ruleAllows(rule, { principal: BILLING, method: "GET", headers: tenant })).toBe(true);
    expect(
      ruleAllows(rule, { principal: ORDERS, method: "POST", path: "/public/a", headers: tenant }),
    ).toBe(true);
    expect(ruleAllows(rule, { principal: ORDERS, method: "POST", headers: tenant })).toBe(false);
    expect(ruleAllows(rule, { principal: PARTNER_ORDERS, method: "GET", headers: tenant })).toBe(
      false,
    );
    expect(ruleAllows(rule, { principal: ORDERS, method: "GET" })).toBe(false);
  });

  it("ANDs the fields within one source or operation", () => {
    const rule = { to: [{ operation: { methods: ["GET"], notPaths: ["/private/*"] } }] };
    expect(ruleAllows(rule, { method: "GET", path: "/a" })).toBe(true);
    expect(ruleAllows(rule, { method: "GET", path: "/private/a" })).toBe(false);
    expect(ruleAllows(rule, { method: "PUT", path: "/a" })).toBe(false);
  });
});

describe("principals", () => {
  const from = (source: object) => ({ from: [{ source }] });

  it("matches an exact SPIFFE ID, case-sensitively", () => {
    const rule = from({ principals: [ORDERS] });
    expect(ruleAllows(rule, { principal: ORDERS })).toBe(true);
    expect(ruleAllows(rule, { principal: BILLING })).toBe(false);
    expect(ruleAllows(rule, { principal: "spiffe://meshwork.local/Orders" })).toBe(false);
    expect(ruleAllows(rule, { principal: undefined })).toBe(false);
  });

  it("'*' is any authenticated caller, never an unauthenticated one", () => {
    const rule = from({ principals: ["*"] });
    expect(ruleAllows(rule, { principal: PARTNER_ORDERS })).toBe(true);
    expect(ruleAllows(rule, { principal: undefined })).toBe(false);
  });

  it("matches a prefix (a whole trust domain) and a suffix", () => {
    const domain = from({ principals: ["spiffe://meshwork.local/*"] });
    expect(ruleAllows(domain, { principal: BILLING })).toBe(true);
    expect(ruleAllows(domain, { principal: PARTNER_ORDERS })).toBe(false);
    expect(ruleAllows(domain, { principal: undefined })).toBe(false);

    const anyOrders = from({ principals: ["*/orders"] });
    expect(ruleAllows(anyOrders, { principal: ORDERS })).toBe(true);
    expect(ruleAllows(anyOrders, { principal: PARTNER_ORDERS })).toBe(true);
    expect(ruleAllows(anyOrders, { principal: BILLING })).toBe(false);
    expect(ruleAllows(anyOrders, { principal: undefined })).toBe(false);
  });

  it("notPrincipals matches callers none of its patterns match, unauthenticated ones included", () => {
    const notOrders = from({ notPrincipals: [ORDERS] });
    expect(ruleAllows(notOrders, { principal: BILLING })).toBe(true);
    expect(ruleAllows(notOrders, { principal: ORDERS })).toBe(false);
    expect(ruleAllows(notOrders, { principal: undefined })).toBe(true);

    const unauthenticated = from({ notPrincipals: ["*"] });
    expect(ruleAllows(unauthenticated, { principal: undefined })).toBe(true);
    expect(ruleAllows(unauthenticated, { principal: ORDERS })).toBe(false);

    const outsideDomain = from({ notPrincipals: ["spiffe://meshwork.local/*"] });
    expect(ruleAllows(outsideDomain, { principal: PARTNER_ORDERS })).toBe(true);
    expect(ruleAllows(outsideDomain, { principal: BILLING })).toBe(false);

    const notAnyOrders = from({ notPrincipals: ["*/orders"] });
    expect(ruleAllows(notAnyOrders, { principal: PARTNER_ORDERS })).toBe(false);
    expect(ruleAllows(notAnyOrders, { principal: BILLING })).toBe(true);
  });

  it("a DENY on notPrincipals '*' refuses unauthenticated calls only", () => {
    const policies = [deny("require-identity", [from({ notPrincipals: ["*"] })])];
    expect(decide(policies, { principal: undefined }, "ALLOW")).toMatchObject({
      allowed: false,
      policy: "require-identity",
    });
    expect(decide(policies, { principal: ORDERS }, "ALLOW").allowed).toBe(true);
  });
});

describe("methods", () => {
  const to = (operation: object) => ({ to: [{ operation }] });

  it("methods match exactly, notMethods when none matches", () => {
    const readOnly = to({ methods: ["GET", "HEAD"] });
    expect(ruleAllows(readOnly, { method: "HEAD" })).toBe(true);
    expect(ruleAllows(readOnly, { method: "POST" })).toBe(false);
    expect(ruleAllows(readOnly, { method: "get" })).toBe(false);

    const notWrites = to({ notMethods: ["POST", "PUT"] });
    expect(ruleAllows(notWrites, { method: "GET" })).toBe(true);
    expect(ruleAllows(notWrites, { method: "PUT" })).toBe(false);
  });
});

describe("paths", () => {
  const to = (operation: object) => ({ to: [{ operation }] });

  it("matches exact patterns on the canonical path", () => {
    const rule = to({ paths: ["/Orders/"] });
    for (const path of ["/orders", "/ORDERS/", "/a/../orders", "/%6Frders"]) {
      expect(ruleAllows(rule, { path }), path).toBe(true);
    }
    for (const path of ["/orders/1", "/order", "/"]) {
      expect(ruleAllows(rule, { path }), path).toBe(false);
    }
  });

  it("a prefix ending in '/*' matches the path itself and what lies under it", () => {
    const rule = to({ paths: ["/api/*"] });
    for (const path of ["/api", "/api/", "/api/v1/x", "/API/V1"]) {
      expect(ruleAllows(rule, { path }), path).toBe(true);
    }
    for (const path of ["/apis", "/ap", "/"]) {
      expect(ruleAllows(rule, { path }), path).toBe(false);
    }
  });

  it("a prefix ending inside a segment is a string prefix", () => {
    const rule = to({ paths: ["/api/v*"] });
    expect(ruleAllows(rule, { path: "/api/v1/x" })).toBe(true);
    expect(ruleAllows(rule, { path: "/api/version" })).toBe(true);
    expect(ruleAllows(rule, { path: "/api/x" })).toBe(false);
  });

  it("'*' and '/*' match every path", () => {
    for (const pattern of ["*", "/*"]) {
      expect(ruleAllows(to({ paths: [pattern] }), { path: "/" })).toBe(true);
      expect(ruleAllows(to({ paths: [pattern] }), { path: "/a/b" })).toBe(true);
      expect(ruleAllows(to({ notPaths: [pattern] }), { path: "/a/b" })).toBe(false);
    }
  });

  it("a suffix matches the end of the canonical path", () => {
    const rule = to({ paths: ["*.JSON"] });
    expect(ruleAllows(rule, { path: "/a/b.json" })).toBe(true);
    expect(ruleAllows(rule, { path: "/a/B.Json/" })).toBe(true);
    expect(ruleAllows(rule, { path: "/a/b.json;v=1" })).toBe(true);
    expect(ruleAllows(rule, { path: "/a/b.xml" })).toBe(false);

    const underOrders = to({ paths: ["*/orders"] });
    expect(ruleAllows(underOrders, { path: "/v1/Orders/" })).toBe(true);
    expect(ruleAllows(underOrders, { path: "/v1/preorders" })).toBe(false);
  });

  it("notPaths matches paths none of its patterns match", () => {
    const rule = to({ notPaths: ["/health", "/metrics/*"] });
    expect(ruleAllows(rule, { path: "/orders" })).toBe(true);
    expect(ruleAllows(rule, { path: "/Health/" })).toBe(false);
    expect(ruleAllows(rule, { path: "/metrics/x" })).toBe(false);
  });
});

describe("cost per call", () => {
  /** A request whose path getter counts how often it is read. */
  function countingPathReads(path: string) {
    const request = call();
    let reads = 0;
    Object.defineProperty(request, "path", {
      get: () => {
        reads += 1;
        return path;
      },
    });
    return { request, reads: () => reads };
  }

  it("reads the path at most once per call, and not at all without path patterns", () => {
    const withPaths = compileAuthorization(
      [
        deny("a", [{ to: [{ operation: { paths: ["/a"] } }] }]),
        deny("b", [{ to: [{ operation: { notPaths: ["/b/*"] } }] }]),
        policy("c", [{ to: [{ operation: { paths: ["*.json"] } }] }]),
      ],
      "DENY",
    );
    const first = countingPathReads("/B/x.JSON");
    expect(authorize(withPaths, first.request)).toMatchObject({ allowed: true, policy: "c" });
    expect(first.reads()).toBe(1);

    const withoutPaths = compileAuthorization(
      [deny("gets", [{ to: [{ operation: { methods: ["GET"] } }] }])],
      "ALLOW",
    );
    const second = countingPathReads("/x");
    authorize(withoutPaths, second.request);
    expect(second.reads()).toBe(0);
  });
});

describe("a DENY on a path cannot be walked around by spelling the path differently", () => {
  const denyAll = (paths: string[]) => [
    policy("allow-all", [{}]),
    deny("block-admin", [{ to: [{ operation: { paths } }] }]),
  ];

  it("an exact DENY on /admin catches every spelling of /admin, and nothing else", () => {
    const policies = denyAll(["/admin"]);
    const spellings = [
      "/admin",
      "/a/../admin",
      "/%2e%2e/admin",
      "/x/%2E%2E/admin",
      "//admin",
      "/%2Fadmin",
      "/ADMIN",
      "/admin/",
      "/admin;x",
      "/Admin;jsessionid=1/",
      "/%61dmin",
      "\\admin",
      "/%5Cadmin",
      "/./admin/.",
      "/admin%3Bx",
    ];
    for (const path of spellings) {
      expect(decide(policies, { path }), path).toMatchObject({
        allowed: false,
        policy: "block-admin",
      });
    }
    for (const path of ["/administrator", "/admin-panel", "/admin/users", "/x/admin"]) {
      expect(decide(policies, { path }), path).toMatchObject({
        allowed: true,
        policy: "allow-all",
      });
    }
  });

  it("a prefix DENY on /admin/* catches every spelling of a path under /admin", () => {
    const policies = denyAll(["/admin/*"]);
    for (const path of [
      "/admin",
      "/admin/users",
      "/ADMIN/Users/",
      "/x/../admin/users",
      "/admin;p/users",
      "/%2561/../admin/users",
      "/public/..%2Fadmin/users",
    ]) {
      expect(decide(policies, { path }).allowed, path).toBe(false);
    }
    for (const path of ["/administrator", "/admin-panel/users", "/public/admin"]) {
      expect(decide(policies, { path }).allowed, path).toBe(true);
    }
  });
});

describe("header conditions", () => {
  const when = (condition: object) => ({ when: [condition] });

  it("matches exact, prefix, suffix and presence patterns", () => {
    const headers = new Headers({ "x-env": "staging-eu" });
    for (const [pattern, expected] of [
      ["staging-eu", true],
      ["staging", false],
      ["staging*", true],
      ["*-eu", true],
      ["*-us", false],
      ["*", true],
    ] as const) {
      const rule = when({ key: "request.headers[x-env]", values: [pattern] });
      expect(ruleAllows(rule, { headers }), pattern).toBe(expected);
    }
  });

  it("a missing header matches no values and every notValues", () => {
    const values = when({ key: "request.headers[x-env]", values: ["*"] });
    const notValues = when({ key: "request.headers[x-env]", notValues: ["prod"] });
    expect(ruleAllows(values, { headers: new Headers() })).toBe(false);
    expect(ruleAllows(notValues, { headers: new Headers() })).toBe(true);
    expect(ruleAllows(notValues, { headers: new Headers({ "x-env": "prod" }) })).toBe(false);
    expect(ruleAllows(notValues, { headers: new Headers({ "x-env": "dev" }) })).toBe(true);
  });

  it("compares header names case-insensitively and values case-sensitively", () => {
    const rule = when({ key: "request.headers[X-Env]", values: ["Prod"] });
    expect(ruleAllows(rule, { headers: new Headers({ "x-ENV": "Prod" }) })).toBe(true);
    expect(ruleAllows(rule, { headers: new Headers({ "x-env": "prod" }) })).toBe(false);
  });

  it("compares repeated headers as one value joined with ', '", () => {
    const headers = new Headers([
      ["x-role", "reader"],
      ["x-role", "admin"],
    ]);
    const rule = when({ key: "request.headers[x-role]", values: ["reader, admin"] });
    expect(ruleAllows(rule, { headers })).toBe(true);
    expect(
      ruleAllows(when({ key: "request.headers[x-role]", values: ["admin"] }), { headers }),
    ).toBe(false);
  });

  it("ANDs every condition, and values with notValues in one condition", () => {
    const rule = {
      when: [
        { key: "request.headers[x-env]", values: ["prod*"], notValues: ["prod-canary"] },
        { key: "request.headers[x-team]", values: ["payments"] },
      ],
    };
    const headers = (env: string) => new Headers({ "x-env": env, "x-team": "payments" });
    expect(ruleAllows(rule, { headers: headers("prod-eu") })).toBe(true);
    expect(ruleAllows(rule, { headers: headers("prod-canary") })).toBe(false);
    expect(ruleAllows(rule, { headers: new Headers({ "x-env": "prod-eu" }) })).toBe(false);
  });

  it("never puts a header value in the reason", () => {
    const rule = when({ key: "request.headers[authorization]", values: ["Bearer *"] });
    const decision = decide([deny("no-bearer", [rule])], {
      headers: new Headers({ authorization: "Bearer s3cret" }),
    });
    expect(decision.allowed).toBe(false);
    expect(decision.reason).not.toContain("s3cret");
  });
});

describe("AUDIT policies", () => {
  it("records the AUDIT policies that matched without changing the decision", () => {
    const policies = [
      audit("audit-writes", [{ to: [{ operation: { methods: ["POST"] } }] }]),
      audit("audit-all", [{}]),
      deny("no-post", [{ to: [{ operation: { methods: ["POST"] } }] }]),
    ];
    expect(decide(policies, { method: "POST" }, "ALLOW")).toMatchObject({
      allowed: false,
      policy: "no-post",
      audited: ["audit-all", "audit-writes"],
    });
    expect(decide(policies, { method: "GET" }, "ALLOW")).toMatchObject({
      allowed: true,
      reason: "mesh default ALLOW",
      audited: ["audit-all"],
    });
  });

  it("an AUDIT policy does not count as an ALLOW policy applying", () => {
    expect(decide([audit("audit-all", [{}])], {}, "ALLOW").allowed).toBe(true);
    expect(decide([audit("audit-all", [{}])], {}, "DENY").allowed).toBe(false);
  });

  it("shares one empty list when nothing is audited", () => {
    const compiled = compileAuthorization(
      [audit("audit-posts", [{ to: [{ operation: { methods: ["POST"] } }] }])],
      "ALLOW",
    );
    const first = authorize(compiled, call({ method: "GET" }));
    const second = authorize(compiled, call({ method: "GET" }));
    expect(first.audited).toEqual([]);
    expect(first).toBe(second);
    expect(Object.isFrozen(first)).toBe(true);
  });
});

describe("dry-run policies", () => {
  it("records what a dry-run DENY would have done without enforcing it", () => {
    const policies = [
      deny("block-post", [{ to: [{ operation: { methods: ["POST"] } }] }], { dryRun: true }),
    ];
    expect(decide(policies, { method: "POST" }, "ALLOW")).toMatchObject({
      allowed: true,
      reason: "mesh default ALLOW",
      dryRun: [{ policy: "block-post", action: "DENY", matched: true, wouldDeny: true }],
    });
    expect(decide(policies, { method: "GET" }, "ALLOW").dryRun).toEqual([
      { policy: "block-post", action: "DENY", matched: false, wouldDeny: false },
    ]);
  });

  it("a dry-run ALLOW does not count as an ALLOW policy applying", () => {
    const policies = [
      policy("orders-only", [{ from: [{ source: { principals: [ORDERS] } }] }], { dryRun: true }),
    ];
    expect(decide(policies, { principal: BILLING }, "ALLOW")).toMatchObject({
      allowed: true,
      reason: "mesh default ALLOW",
      dryRun: [{ policy: "orders-only", action: "ALLOW", matched: false, wouldDeny: true }],
    });
    expect(decide(policies, { principal: ORDERS }, "DENY")).toMatchObject({
      allowed: false,
      reason: "mesh default DENY",
      dryRun: [{ policy: "orders-only", matched: true, wouldDeny: false }],
    });
  });

  it("a dry-run ALLOW that does not match would not deny a call an enforced ALLOW admits", () => {
    const policies = [
      policy("billing", [{ from: [{ source: { principals: [BILLING] } }] }]),
      policy("orders-only", [{ from: [{ source: { principals: [ORDERS] } }] }], { dryRun: true }),
    ];
    expect(decide(policies, { principal: BILLING }).dryRun).toEqual([
      { policy: "orders-only", action: "ALLOW", matched: false, wouldDeny: false },
    ]);
    expect(decide(policies, { principal: PARTNER_ORDERS }).dryRun).toEqual([
      { policy: "orders-only", action: "ALLOW", matched: false, wouldDeny: true },
    ]);
  });

  it("a dry-run AUDIT is recorded as dry run, not as audited", () => {
    const decision = decide([audit("audit-all", [{}], { dryRun: true })], {}, "ALLOW");
    expect(decision.audited).toEqual([]);
    expect(decision.dryRun).toEqual([
      { policy: "audit-all", action: "AUDIT", matched: true, wouldDeny: false },
    ]);
  });
});
