import { describe, expect, it } from "vitest";
import { buildSnapshot, INDEX_KEY, parseEntry, parseIndex } from "./snapshot.ts";
import { validateResources, type ValidateOptions } from "./validate.ts";

const service = (name: string, binding = "ECHO_V1") => ({
  apiVersion: "meshwork.dev/v1",
  kind: "Service",
  metadata: { name },
  spec: { endpoints: [{ binding }] },
});

const route = (spec: object, name = "r") => ({
  apiVersion: "gateway.networking.k8s.io/v1",
  kind: "HTTPRoute",
  metadata: { name },
  spec: { parentRefs: [{ name: "echo" }], ...spec },
});

function issuesOf(resources: unknown[], options: ValidateOptions = {}) {
  const result = validateResources(resources, options);
  if (result.ok) throw new Error("expected validation to fail");
  return result.issues;
}

describe("config validation", () => {
  it("accepts a Service and a Gateway API HTTPRoute, filling defaults", () => {
    const result = validateResources([
      service("echo"),
      service("echo-v1"),
      route({ rules: [{ backendRefs: [{ name: "echo-v1" }] }] }),
    ]);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const rule = result.value.routes[0]!.spec.rules[0]!;
    expect(rule.backendRefs![0]!.weight).toBe(1);
    expect(result.value.services[0]!.spec.endpoints[0]).toEqual({ binding: "ECHO_V1", weight: 1 });
  });

  it("names the field path of a negative weight", () => {
    const issues = issuesOf([
      service("echo"),
      route({ rules: [{}, {}, { backendRefs: [{ name: "echo", weight: -1 }] }] }),
    ]);
    expect(issues).toContainEqual({
      path: "resources[1].spec.rules[2].backendRefs[0].weight",
      message: expect.stringMatching(/>=0|≥ ?0|too small/i),
    });
  });

  it("rejects unknown fields instead of ignoring them", () => {
    const issues = issuesOf([service("echo"), route({ rules: [{ retries: { attempts: 3 } }] })]);
    expect(issues[0]!.path).toBe("resources[1].spec.rules[0]");
    expect(issues[0]!.message).toMatch(/retries/);
  });

  it("accepts a backendRef to a missing Service with a warning (Gateway API), or refuses it when strict", () => {
    const resources = [service("echo"), route({ rules: [{ backendRefs: [{ name: "ghost" }] }] })];
    const result = validateResources(resources);
    expect(result.ok).toBe(true);
    expect(result.warnings).toEqual([
      {
        path: "resources[1].spec.rules[0].backendRefs[0].name",
        message:
          "names Service 'ghost', which does not exist; requests for it will be answered 500",
      },
    ]);
    const strict = validateResources(resources, { strict: true });
    expect(strict.ok).toBe(false);
    if (!strict.ok) expect(strict.issues.map((i) => i.path)).toEqual([result.warnings[0]!.path]);
  });

  it("accepts a backendRef of another kind with a warning", () => {
    const result = validateResources([
      service("echo"),
      route({
        rules: [
          {
            backendRefs: [
              {
                group: "unknownkind.example.com",
                kind: "NonExistent",
                name: "web-backend",
                port: 8080,
              },
            ],
          },
        ],
      }),
    ]);
    expect(result.ok).toBe(true);
    expect(result.warnings[0]!.path).toBe("resources[1].spec.rules[0].backendRefs[0]");
    expect(result.warnings[0]!.message).toMatch(/NonExistent 'web-backend'.*only to Services/);
  });

  it("warns about a mirror to a missing Service, and refuses a parent that does not exist", () => {
    const mirror = {
      filters: [{ type: "RequestMirror", requestMirror: { backendRef: { name: "gone" } } }],
      backendRefs: [{ name: "echo" }],
    };
    const result = validateResources([service("echo"), route({ rules: [mirror] })]);
    expect(result.ok && result.warnings.map((w) => w.path)).toEqual([
      "resources[1].spec.rules[0].filters[0].requestMirror.backendRef.name",
    ]);
    expect(result.warnings[0]!.message).toMatch(/nothing will be mirrored/);
    // A route attached to a Service that does not exist would apply to no call: an issue.
    const issues = issuesOf([
      service("echo"),
      route({ parentRefs: [{ name: "echo" }, { name: "nowhere" }], rules: [mirror] }),
    ]);
    expect(issues).toEqual([
      {
        path: "resources[1].spec.parentRefs[1].name",
        message: expect.stringMatching(
          /^names Service 'nowhere', which does not exist: an HTTPRoute attached to nothing would apply to no call\. Add the Service, or fix or remove this reference/,
        ),
      },
    ]);
  });

  it("refuses a path value with characters a URL path cannot hold, saying how to write them", () => {
    const issues = issuesOf([
      service("echo"),
      route({ rules: [{ matches: [{ path: { type: "Exact", value: "/café" } }] }] }),
    ]);
    expect(issues[0]!.path).toBe("resources[1].spec.rules[0].matches[0].path");
    expect(issues[0]!.message).toMatch(/percent-encode anything else \(é as %C3%A9/);
  });

  it("refuses parentRefs[].port and sectionName rather than ignoring them", () => {
    const withPort = route({});
    (withPort.spec as { parentRefs: unknown[] }).parentRefs = [{ name: "echo", port: 80 }];
    const issues = issuesOf([service("echo"), withPort]);
    expect(issues[0]!.path).toBe("resources[1].spec.parentRefs[0].port");
    expect(issues[0]!.message).toMatch(/no ports.*remove port/);
    const withSection = route({});
    (withSection.spec as { parentRefs: unknown[] }).parentRefs = [
      { name: "echo", sectionName: "http" },
    ];
    expect(issuesOf([service("echo"), withSection])[0]!.path).toBe(
      "resources[1].spec.parentRefs[0].sectionName",
    );
  });

  it("refuses an endpoint binding the router does not declare, naming the binding and the file", () => {
    const issues = issuesOf([service("payments", "PAYMENTS_V9")], {
      routerBindings: { names: new Set(["PAYMENTS_V1", "PAYMENTS_V2"]), file: "wrangler.toml" },
    });
    expect(issues).toEqual([
      {
        path: "resources[0].spec.endpoints[0].binding",
        message: expect.stringMatching(
          /no service binding 'PAYMENTS_V9': wrangler.toml declares PAYMENTS_V1, PAYMENTS_V2/,
        ),
      },
    ]);
  });

  it("rejects a parentRef to a Gateway (mesh routes attach to Services)", () => {
    const bad = route({});
    (bad.spec as { parentRefs: unknown[] }).parentRefs = [{ kind: "Gateway", name: "echo" }];
    const issues = issuesOf([service("echo"), bad]);
    expect(issues[0]!.path).toBe("resources[1].spec.parentRefs[0].kind");
  });

  it("rejects plain http endpoints except on loopback", () => {
    const plain = { ...service("ext"), spec: { endpoints: [{ url: "http://example.com" }] } };
    expect(issuesOf([plain])[0]!.message).toMatch(/https/);
    const loop = { ...service("ext"), spec: { endpoints: [{ url: "http://127.0.0.1:9000/api" }] } };
    expect(validateResources([loop]).ok).toBe(true);
  });

  it("enforces the Gateway API's cross-field rules", () => {
    const both = issuesOf([
      service("echo"),
      route({
        rules: [
          {
            filters: [
              { type: "URLRewrite", urlRewrite: { hostname: "a.example" } },
              { type: "RequestRedirect", requestRedirect: { scheme: "https" } },
            ],
          },
        ],
      }),
    ]);
    expect(both[0]!.message).toMatch(/cannot be used together/);

    const prefixOnExact = issuesOf([
      service("echo"),
      route({
        rules: [
          {
            matches: [{ path: { type: "Exact", value: "/a" } }],
            filters: [
              {
                type: "URLRewrite",
                urlRewrite: { path: { type: "ReplacePrefixMatch", replacePrefixMatch: "/b" } },
              },
            ],
          },
        ],
      }),
    ]);
    expect(prefixOnExact[0]!.path).toBe("resources[1].spec.rules[0].matches[0].path.type");

    const timeouts = issuesOf([
      service("echo"),
      route({ rules: [{ timeouts: { request: "1s", backendRequest: "2s" } }] }),
    ]);
    expect(timeouts[0]!.path).toBe("resources[1].spec.rules[0].timeouts.backendRequest");

    const regex = issuesOf([
      service("echo"),
      route({ rules: [{ matches: [{ path: { type: "RegularExpression", value: "/(" } }] }] }),
    ]);
    expect(regex[0]!.message).toMatch(/regular expression/);

    const dupHeaders = issuesOf([
      service("echo"),
      route({
        rules: [
          {
            matches: [
              {
                headers: [
                  { name: "X-A", value: "1" },
                  { name: "x-a", value: "2" },
                ],
              },
            ],
          },
        ],
      }),
    ]);
    expect(dupHeaders[0]!.message).toMatch(/duplicate header/);
  });

  it("rejects duplicate resources and unknown kinds", () => {
    expect(issuesOf([service("echo"), service("echo")])[0]!.message).toMatch(
      /duplicate Service\/echo/,
    );
    expect(
      issuesOf([{ apiVersion: "v1", kind: "Pod", metadata: { name: "x" } }])[0]!.message,
    ).toMatch(/kind must be one of/);
    expect(issuesOf({} as unknown as unknown[])[0]!.message).toMatch(/list/);
  });
});

describe("snapshot", () => {
  const config = validateResources([
    service("echo"),
    service("echo-v1"),
    service("other"),
    route({ rules: [{ backendRefs: [{ name: "echo-v1" }] }] }),
  ]);

  it("writes one entry per destination and the index last", () => {
    if (!config.ok) throw new Error("bad fixture");
    const build = buildSnapshot(config.value, 3, new Date("2026-11-26T00:00:00Z"));
    if (!build.ok) throw new Error(JSON.stringify(build.issues));
    const { index, writes } = build;
    expect(writes.at(-1)!.key).toBe(INDEX_KEY);
    expect(Object.keys(index.destinations).sort()).toEqual(["echo", "echo-v1", "other"]);
    const echoKey = index.destinations.echo!;
    const echo = parseEntry(JSON.parse(writes.find((w) => w.key === echoKey)!.value), echoKey);
    expect(echo.ok).toBe(true);
    if (!echo.ok) return;
    expect(echo.value.routes.map((r) => r.metadata.name)).toEqual(["r"]);
    expect(echo.value.backends.map((s) => s.metadata.name)).toEqual(["echo-v1"]);
    expect(parseIndex(index).ok).toBe(true);
  });

  it("keeps an unchanged destination's key across versions (content addressed)", () => {
    if (!config.ok) throw new Error("bad fixture");
    const a = buildSnapshot(config.value, 1, new Date());
    const b = buildSnapshot(config.value, 2, new Date());
    if (!a.ok || !b.ok) throw new Error("bad fixture");
    expect(b.index.destinations).toEqual(a.index.destinations);
  });

  it("reports a hand-written bad entry with its key and field", () => {
    const parsed = parseEntry(
      { schema: 1, service: { kind: "Service" }, routes: [], backends: [] },
      "mesh/dest/x/1",
    );
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.issues[0]!.path.startsWith("mesh/dest/x/1")).toBe(true);
  });
});

describe("BackendPolicy", () => {
  const policy = (name: string, target: string, circuitBreaker: object, metadata: object = {}) => ({
    apiVersion: "meshwork.dev/v1",
    kind: "BackendPolicy",
    metadata: { name, ...metadata },
    spec: { targetRefs: [{ kind: "Service", name: target }], circuitBreaker },
  });

  it("fills the circuit breaker's defaults", () => {
    const result = validateResources([service("echo"), policy("p", "echo", {})]);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.value.policies[0]!.spec.circuitBreaker).toEqual({
      consecutiveFailures: 5,
      minimumRequests: 20,
      window: "10s",
      baseOpenTime: "5s",
      maxOpenTime: "5m",
      openJitter: 0.1,
      halfOpenProbes: 1,
    });
  });

  it("names the field of a bad knob, and refuses a max open time below the base", () => {
    const issues = issuesOf([
      service("echo"),
      policy("p", "echo", { failureRate: 1.5, baseOpenTime: "10s", maxOpenTime: "5s" }),
    ]);
    expect(issues.map((i) => i.path)).toEqual([
      "resources[1].spec.circuitBreaker.failureRate",
      "resources[1].spec.circuitBreaker.maxOpenTime",
    ]);
  });

  it("refuses a target that does not exist, whatever strict says", () => {
    for (const strict of [false, true]) {
      const issues = issuesOf([service("echo"), policy("p", "ghost", {})], { strict });
      expect(issues).toEqual([
        {
          path: "resources[1].spec.targetRefs[0].name",
          message: expect.stringMatching(
            /^names Service 'ghost', which does not exist: a BackendPolicy/,
          ),
        },
      ]);
    }
  });

  it("puts the policies of a destination and its backends in its snapshot entry", () => {
    const result = validateResources([
      service("echo"),
      service("echo-v1"),
      service("other"),
      service("plain"),
      route({ rules: [{ backendRefs: [{ name: "echo-v1" }] }] }),
      policy("for-v1", "echo-v1", {}),
      policy("for-other", "other", {}),
    ]);
    if (!result.ok) throw new Error("bad fixture");
    const build = buildSnapshot(result.value, 1, new Date());
    if (!build.ok) throw new Error("bad fixture");
    const key = build.index.destinations.echo!;
    const entry = parseEntry(JSON.parse(build.writes.find((w) => w.key === key)!.value), key);
    expect(entry.ok && entry.value.policies.map((p) => p.metadata.name)).toEqual(["for-v1"]);
    // A destination no policy concerns keeps its entry as it was: no `policies` key at all.
    const plain = build.writes.find((w) => w.key === build.index.destinations.plain)!;
    expect(JSON.parse(plain.value)).not.toHaveProperty("policies");
  });
});

describe("BackendPolicy targets and knobs", () => {
  const policy = (targetRefs: object[], spec: object = {}) => ({
    apiVersion: "meshwork.dev/v1",
    kind: "BackendPolicy",
    metadata: { name: "p" },
    spec: { targetRefs, ...spec },
  });
  const echoRoute = {
    ...route({ rules: [{ name: "main", backendRefs: [{ name: "echo" }] }] }),
    metadata: { name: "r" },
  };
  const onRoute = (name: string, sectionName?: string) => ({
    group: "gateway.networking.k8s.io",
    kind: "HTTPRoute",
    name,
    ...(sectionName ? { sectionName } : {}),
  });

  it("attaches to a route or one of its rules, with timeouts, retries and outlier detection", () => {
    const result = validateResources([
      service("echo"),
      echoRoute,
      policy([onRoute("r", "main")], {
        timeouts: { request: "5s", backendRequest: "auto" },
        retry: { attempts: 1, on: ["5xx", "timeout"], codes: [429], maxRetryAfter: "0s" },
        outlierDetection: { maxEjectionPercent: 50 },
      }),
    ]);
    expect(result.ok && result.warnings).toEqual([]);
  });

  it("refuses the knobs that describe a Service on a route target, naming each", () => {
    const issues = issuesOf([
      service("echo"),
      echoRoute,
      policy([onRoute("r")], {
        circuitBreaker: {},
        rateLimit: { total: { requestsPerSecond: 1 } },
      }),
    ]);
    expect(issues.map((i) => i.path)).toEqual([
      "resources[2].spec.circuitBreaker",
      "resources[2].spec.rateLimit",
    ]);
  });

  it("names what is wrong with a target", () => {
    const issues = issuesOf([
      service("echo"),
      policy([
        { kind: "Service", name: "echo", sectionName: "http" },
        { kind: "HTTPRoute", name: "r" },
        { kind: "Gateway", name: "g" },
      ]),
    ]);
    expect(issues.map((i) => i.path)).toEqual([
      "resources[1].spec.targetRefs[0].sectionName",
      "resources[1].spec.targetRefs[1].group",
      "resources[1].spec.targetRefs[2].kind",
    ]);
  });

  it("refuses a route or rule that does not exist", () => {
    const issues = issuesOf([
      service("echo"),
      echoRoute,
      policy([onRoute("ghost"), onRoute("r", "nope"), onRoute("r", "main")], { retry: {} }),
    ]);
    expect(issues.map((i) => [i.path, i.message.split(":")[0]])).toEqual([
      ["resources[2].spec.targetRefs[0].name", "names HTTPRoute 'ghost', which does not exist"],
      [
        "resources[2].spec.targetRefs[1].sectionName",
        "names rule 'nope' of HTTPRoute 'r', which does not exist",
      ],
    ]);
  });

  it("refuses bad knob values with their paths", () => {
    const issues = issuesOf([
      service("echo"),
      policy([{ kind: "Service", name: "echo" }], {
        timeouts: { request: "1s", backendRequest: "2s", auto: { min: "2s", max: "1s" } },
        retry: { on: ["5xx", "5xx"], backoff: "100ms", maxBackoff: "10ms" },
        retryBudget: { ratio: -1 },
        loadBalancer: { type: "LeastConn" },
        rateLimit: {
          total: { requestsPerSecond: 0 },
          overrides: [
            { callers: ["a"], requestsPerSecond: 1 },
            { callers: ["a"], requestsPerSecond: 2 },
          ],
        },
      }),
    ]);
    expect(issues.map((i) => i.path)).toEqual([
      "resources[1].spec.timeouts.auto.max",
      "resources[1].spec.timeouts.backendRequest",
      "resources[1].spec.retry.on",
      "resources[1].spec.retry.maxBackoff",
      "resources[1].spec.retryBudget.ratio",
      "resources[1].spec.loadBalancer.type",
      "resources[1].spec.rateLimit.total.requestsPerSecond",
      "resources[1].spec.rateLimit.overrides[1].callers[0]",
    ]);
  });

  it("refuses a rate limit with nothing to limit, and a Service failing over to itself", () => {
    const issues = issuesOf([
      service("echo"),
      policy([{ kind: "Service", name: "echo" }], {
        rateLimit: {},
      }),
    ]);
    expect(issues.map((i) => i.path)).toEqual(["resources[1].spec.rateLimit"]);
    const self = issuesOf([
      service("echo"),
      policy([{ kind: "Service", name: "echo" }], { failover: { service: "echo" } }),
    ]);
    expect(self[0]).toMatchObject({
      path: "resources[1].spec.failover.service",
      message: expect.stringMatching(/cannot fail over to itself/),
    });
  });

  it("warns about a failover Service that does not exist", () => {
    const result = validateResources([
      service("echo"),
      policy([{ kind: "Service", name: "echo" }], { failover: { service: "ghost" } }),
    ]);
    expect(result.ok && result.warnings.map((w) => w.path)).toEqual([
      "resources[1].spec.failover.service",
    ]);
  });
});

describe("FaultInjection and ExtensionRef", () => {
  const fault = (spec: object) => ({
    apiVersion: "meshwork.dev/v1",
    kind: "FaultInjection",
    metadata: { name: "chaos" },
    spec,
  });
  const withFilter = (extensionRef: object) =>
    route({
      rules: [
        { filters: [{ type: "ExtensionRef", extensionRef }], backendRefs: [{ name: "echo" }] },
      ],
    });

  it("needs a delay or an abort, with percentages between 0 and 100", () => {
    expect(issuesOf([fault({})])[0]!.message).toMatch(/set delay, abort, or both/);
    expect(issuesOf([fault({ abort: { percent: 101, status: 503 } })])[0]!.path).toBe(
      "resources[0].spec.abort.percent",
    );
    expect(validateResources([fault({ delay: { percent: 0.5, fixedDelay: "100ms" } })]).ok).toBe(
      true,
    );
  });

  it("resolves an ExtensionRef to a FaultInjection, and warns about one that does not resolve", () => {
    const good = validateResources([
      service("echo"),
      fault({ abort: { percent: 1, status: 503 } }),
      withFilter({ group: "meshwork.dev", kind: "FaultInjection", name: "chaos" }),
    ]);
    expect(good.ok && good.warnings).toEqual([]);
    const missing = validateResources([
      service("echo"),
      withFilter({ group: "meshwork.dev", kind: "FaultInjection", name: "nope" }),
    ]);
    expect(missing.warnings[0]!.message).toMatch(
      /names FaultInjection 'nope', which does not exist/,
    );
    const foreign = validateResources([
      service("echo"),
      withFilter({ group: "example.com", kind: "Thing", name: "x" }),
    ]);
    expect(foreign.warnings[0]!.message).toMatch(/a filter the mesh does not have/);
    expect(
      validateResources(
        [service("echo"), withFilter({ group: "example.com", kind: "Thing", name: "x" })],
        { strict: true },
      ).ok,
    ).toBe(false);
  });
});

describe("attachment references", () => {
  const targeting = (kind: string, spec: object) => ({
    apiVersion: "meshwork.dev/v1",
    kind,
    metadata: { name: "p" },
    spec: {
      targetRefs: [
        { kind: "Service", name: "echo" },
        { kind: "Service", name: "gone" },
      ],
      ...spec,
    },
  });

  it("refuses an AuthorizationPolicy or PeerAuthentication that targets a missing Service", () => {
    for (const [kind, spec] of [
      ["AuthorizationPolicy", { action: "DENY", rules: [{}] }],
      ["PeerAuthentication", { mode: "PERMISSIVE" }],
    ] as const) {
      const issues = issuesOf([service("echo"), targeting(kind, spec)]);
      expect(issues).toEqual([
        {
          path: "resources[1].spec.targetRefs[1].name",
          message: expect.stringMatching(
            new RegExp(
              `^names Service 'gone', which does not exist: an? ${kind} attached to nothing`,
            ),
          ),
        },
      ]);
      // Without targetRefs it is mesh-wide: nothing to resolve.
      const meshWide = targeting(kind, spec) as { spec: { targetRefs?: unknown } };
      delete meshWide.spec.targetRefs;
      expect(validateResources([service("echo"), meshWide]).ok).toBe(true);
    }
  });
});
