// Cross-resource checks at the admin API, with the real PolicyStore: what a route or policy is
// attached to (parentRefs, targetRefs, a rule's sectionName) must exist, so such a write is
// 400 invalid_config naming the field and changes nothing, and a DELETE of a Service something
// is still attached to is refused naming what is; where a call is sent (a backendRef) may
// dangle, with a warning. Also through the API: regular expressions outside RE2's dialect and
// malformed SPIFFE IDs are refused with their paths.
import { describe, expect, it } from "vitest";
import {
  apply,
  call,
  currentVersion,
  expectJson,
  route,
  service,
  type ErrorAnswer,
  type WriteAnswer,
} from "./helpers.ts";

const MESH = "meshwork.dev/v1";

function backendPolicy(name: string, targetRefs: object[]) {
  return {
    apiVersion: MESH,
    kind: "BackendPolicy",
    metadata: { name },
    spec: { targetRefs, timeouts: { request: "5s" } },
  };
}

function authorizationPolicy(name: string, target: string, principals = ["*"]) {
  return {
    apiVersion: MESH,
    kind: "AuthorizationPolicy",
    metadata: { name },
    spec: {
      targetRefs: [{ kind: "Service", name: target }],
      rules: [{ from: [{ source: { principals } }] }],
    },
  };
}

function peerAuthentication(name: string, target: string) {
  return {
    apiVersion: MESH,
    kind: "PeerAuthentication",
    metadata: { name },
    spec: { targetRefs: [{ kind: "Service", name: target }], mode: "PERMISSIVE" },
  };
}

const onService = (name: string) => ({ kind: "Service", name });
const onRoute = (name: string, sectionName?: string) => ({
  group: "gateway.networking.k8s.io",
  kind: "HTTPRoute",
  name,
  ...(sectionName === undefined ? {} : { sectionName }),
});

/** Sends a write that must be refused with invalid_config; checks nothing changed. */
async function refused(method: string, path: string, body?: unknown) {
  const before = await currentVersion();
  const answer = await expectJson<ErrorAnswer>(call(method, path, { body }), 400);
  expect(answer.error.code).toBe("invalid_config");
  expect(await currentVersion()).toBe(before);
  return answer.error;
}

describe("what a policy or route is attached to must exist", () => {
  it("POST /v1/apply: a policy of each kind targeting a missing Service is 400 with its path", async () => {
    const error = await refused("POST", "/v1/apply", {
      resources: [
        service("ref-real"),
        backendPolicy("ref-bp", [onService("ref-real"), onService("ref-ghost")]),
        authorizationPolicy("ref-authz", "ref-ghost"),
        peerAuthentication("ref-peer", "ref-ghost"),
      ],
    });
    expect(error.issues).toEqual([
      {
        path: "resources[1].spec.targetRefs[1].name",
        message: expect.stringMatching(
          /^names Service 'ref-ghost', which does not exist: a BackendPolicy attached to nothing would apply to no call/,
        ),
      },
      {
        path: "resources[2].spec.targetRefs[0].name",
        message: expect.stringMatching(/^names Service 'ref-ghost'.*AuthorizationPolicy/),
      },
      {
        path: "resources[3].spec.targetRefs[0].name",
        message: expect.stringMatching(/^names Service 'ref-ghost'.*PeerAuthentication/),
      },
    ]);
    await expectJson(call("GET", "/v1/resources/Service/ref-real"), 404);
  });

  it("PUT: a BackendPolicy on a missing HTTPRoute, or a rule the route does not have, is 400", async () => {
    await apply([
      service("ref-svc"),
      {
        ...route("ref-route", "ref-svc", ["ref-svc"]),
        spec: {
          parentRefs: [{ name: "ref-svc" }],
          rules: [{ name: "main", backendRefs: [{ name: "ref-svc" }] }],
        },
      },
    ]);
    const policy = backendPolicy("ref-on-route", [
      onRoute("ref-no-route"),
      onRoute("ref-route", "nope"),
      onRoute("ref-route", "main"),
    ]);
    const error = await refused("PUT", "/v1/resources/BackendPolicy/ref-on-route", policy);
    expect(error.issues!.map((i) => i.path)).toEqual([
      "BackendPolicy/ref-on-route.spec.targetRefs[0].name",
      "BackendPolicy/ref-on-route.spec.targetRefs[1].sectionName",
    ]);
    expect(error.issues![1]!.message).toMatch(
      /^names rule 'nope' of HTTPRoute 'ref-route', which does not exist/,
    );
    // Attached to what exists, it is taken.
    const fixed = backendPolicy("ref-on-route", [onRoute("ref-route", "main")]);
    await expectJson(call("PUT", "/v1/resources/BackendPolicy/ref-on-route", { body: fixed }));
    await expectJson(call("DELETE", "/v1/resources/BackendPolicy/ref-on-route"));
  });

  it("an HTTPRoute whose parentRef names a missing Service is 400, in a dry run too", async () => {
    for (const query of ["", "?dryRun=true"]) {
      const error = await refused("POST", `/v1/apply${query}`, {
        resources: [service("ref-backend"), route("ref-orphan", "ref-nowhere", ["ref-backend"])],
      });
      expect(error.issues).toEqual([
        {
          path: "resources[1].spec.parentRefs[0].name",
          message: expect.stringMatching(/^names Service 'ref-nowhere', which does not exist/),
        },
      ]);
    }
  });

  it("a backendRef to a missing Service is still taken, with a warning (Gateway API)", async () => {
    const before = await currentVersion();
    const answer = await apply([service("ref-front"), route("ref-dangling", "ref-front", ["x"])]);
    expect(answer.version).toBe(before + 1);
    expect(answer.warnings).toEqual([
      {
        path: "resources[1].spec.rules[0].backendRefs[0].name",
        message: "names Service 'x', which does not exist; requests for it will be answered 500",
      },
    ]);
    await expectJson(call("DELETE", "/v1/resources/HTTPRoute/ref-dangling"));
  });
});

describe("DELETE of a Service something is attached to", () => {
  it("is refused naming each policy and route attached to it, and changes nothing", async () => {
    await apply([
      service("ref-target"),
      service("ref-other"),
      route("ref-target-route", "ref-target", ["ref-other"]),
      backendPolicy("ref-target-bp", [onService("ref-target")]),
      authorizationPolicy("ref-target-authz", "ref-target"),
      peerAuthentication("ref-target-peer", "ref-target"),
    ]);
    for (const query of ["", "?dryRun=true"]) {
      const error = await refused("DELETE", `/v1/resources/Service/ref-target${query}`);
      expect(error.message).toMatch(/^deleting Service\/ref-target would leave the config invalid/);
      expect(error.issues!.map((i) => i.path).sort()).toEqual([
        "AuthorizationPolicy/ref-target-authz.spec.targetRefs[0].name",
        "BackendPolicy/ref-target-bp.spec.targetRefs[0].name",
        "HTTPRoute/ref-target-route.spec.parentRefs[0].name",
        "PeerAuthentication/ref-target-peer.spec.targetRefs[0].name",
      ]);
      for (const issue of error.issues!) {
        expect(issue.message).toMatch(/^names Service 'ref-target', which does not exist/);
      }
    }
    await expectJson(call("GET", "/v1/resources/Service/ref-target"));
    // What is attached goes first; then the Service may go, leaving only warnings behind.
    for (const key of [
      "HTTPRoute/ref-target-route",
      "BackendPolicy/ref-target-bp",
      "AuthorizationPolicy/ref-target-authz",
      "PeerAuthentication/ref-target-peer",
    ]) {
      await expectJson(call("DELETE", `/v1/resources/${key}`));
    }
    const before = await currentVersion();
    const deleted = await expectJson<WriteAnswer>(
      call("DELETE", "/v1/resources/Service/ref-target"),
    );
    expect(deleted.version).toBe(before + 1);
  });

  it("is refused when a BackendPolicy is attached to a route of it only through the route", async () => {
    await apply([
      service("ref-via"),
      route("ref-via-route", "ref-via", ["ref-via"]),
      backendPolicy("ref-via-bp", [onRoute("ref-via-route")]),
    ]);
    const error = await refused("DELETE", "/v1/resources/HTTPRoute/ref-via-route");
    expect(error.issues!.map((i) => i.path)).toEqual([
      "BackendPolicy/ref-via-bp.spec.targetRefs[0].name",
    ]);
  });
});

describe("regular expressions and SPIFFE IDs through the admin API", () => {
  const regexRoute = (path: string, header: string) => ({
    apiVersion: "gateway.networking.k8s.io/v1",
    kind: "HTTPRoute",
    metadata: { name: "ref-regex" },
    spec: {
      parentRefs: [{ name: "ref-re" }],
      rules: [
        {
          matches: [
            {
              path: { type: "RegularExpression", value: path },
              headers: [{ type: "RegularExpression", name: "x-user", value: header }],
            },
          ],
          backendRefs: [{ name: "ref-re" }],
        },
      ],
    },
  });

  it("a lookahead or a backreference is 400 naming the pattern's field; RE2 syntax is taken", async () => {
    const error = await refused("POST", "/v1/apply", {
      resources: [service("ref-re"), regexRoute("/(?=a)x", "(a)\\1")],
    });
    expect(error.issues).toEqual([
      {
        path: "resources[1].spec.rules[0].matches[0].path.value",
        message: expect.stringMatching(/^is not a valid RE2 regular expression: .*\(\?=/),
      },
      {
        path: "resources[1].spec.rules[0].matches[0].headers[0].value",
        message: expect.stringMatching(/^is not a valid RE2 regular expression: .*\\1/),
      },
    ]);
    const taken = await apply([service("ref-re"), regexRoute("/users/[0-9]+", "(alice|bob)")]);
    expect(taken.warnings).toEqual([]);
    await expectJson(call("DELETE", "/v1/resources/HTTPRoute/ref-regex"));
  });

  it("a malformed SPIFFE ID in a principal or a Revocation is 400 naming it", async () => {
    const error = await refused("POST", "/v1/apply", {
      resources: [
        service("ref-id"),
        authorizationPolicy("ref-ids", "ref-id", [
          "spiffe://Meshwork.Local/orders",
          "spiffe://meshwork.local",
          "https://meshwork.local/orders",
          "spiffe://meshwork.local/orders",
        ]),
        {
          apiVersion: MESH,
          kind: "Revocation",
          metadata: { name: "ref-revoke" },
          spec: { subject: "spiffe:/meshwork.local/orders" },
        },
      ],
    });
    expect(error.issues!.map((i) => i.path)).toEqual([
      "resources[1].spec.rules[0].from[0].source.principals[0]",
      "resources[1].spec.rules[0].from[0].source.principals[1]",
      "resources[1].spec.rules[0].from[0].source.principals[2]",
      "resources[2].spec.subject",
    ]);
    for (const issue of error.issues!) expect(issue.message).toMatch(/SPIFFE ID/);
    await expectJson(call("GET", "/v1/resources/AuthorizationPolicy/ref-ids"), 404);
  });
});
