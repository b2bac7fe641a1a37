// The config limits, each enforced with a message that names the field and the limit, by the same
// code in publish (validateResources) and in the router (parseEntry on what it loads from KV).
import { describe, expect, it } from "vitest";
import {
  MAX_ANNOTATIONS_LENGTH,
  MAX_ENTRY_BYTES,
  MAX_MATCHES_PER_DESTINATION,
  MAX_MATCHES_PER_ROUTE,
  MAX_RESOURCE_BYTES,
  MAX_RESOURCES,
  MAX_ROUTES_PER_SERVICE,
} from "./limits.ts";
import { buildSnapshot, parseEntry } from "./snapshot.ts";
import { validateResources } from "./validate.ts";

const service = (name: string, metadata: object = {}) => ({
  apiVersion: "meshwork.dev/v1",
  kind: "Service",
  metadata: { name, ...metadata },
  spec: { endpoints: [{ binding: "ECHO_V1" }] },
});

const route = (name: string, rules: unknown[], parent = "echo") => ({
  apiVersion: "gateway.networking.k8s.io/v1",
  kind: "HTTPRoute",
  metadata: { name },
  spec: { parentRefs: [{ name: parent }], rules },
});

function issues(resources: unknown): { path: string; message: string }[] {
  const result = validateResources(resources);
  if (result.ok) throw new Error("expected the config to be refused");
  return result.issues;
}

const pathMatch = (i: number) => ({ path: { type: "Exact", value: `/p${i}` } });

describe("config limits", () => {
  it("refuses a 10 MB annotation (the attack), naming the field and the limit", () => {
    const huge = service("echo", { annotations: { note: "x".repeat(10 * 1024 * 1024) } });
    const [issue] = issues([huge]);
    expect(issue!.path).toBe("resources[0]");
    expect(issue!.message).toMatch(new RegExp(`limit is ${MAX_RESOURCE_BYTES}`));
  });

  it("refuses annotations larger than their own limit even under the resource limit", () => {
    const many = service("echo", {
      annotations: { a: "x".repeat(MAX_ANNOTATIONS_LENGTH), b: "y" },
    });
    const [issue] = issues([many]);
    expect(issue!.path).toBe("resources[0].metadata.annotations");
    expect(issue!.message).toMatch(/limit is 16384/);
  });

  it("refuses long label values and too many labels", () => {
    expect(issues([service("echo", { labels: { team: "x".repeat(64) } })])[0]!.path).toBe(
      "resources[0].metadata.labels.team",
    );
    const labels = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`l${i}`, "v"]));
    expect(issues([service("echo", { labels })])[0]!.message).toMatch(/65 entries/);
  });

  it("refuses more resources than the limit without parsing them", () => {
    const list = Array.from({ length: MAX_RESOURCES + 1 }, () => ({}));
    expect(issues(list)).toEqual([
      { path: "resources", message: expect.stringMatching(/limit is 20000/) },
    ]);
  });

  it("refuses a route with more matches than Gateway API allows in one route", () => {
    const rules = Array.from({ length: 3 }, (_, r) => ({
      matches: Array.from({ length: 50 }, (_, i) => pathMatch(r * 50 + i)),
    }));
    const [issue] = issues([service("echo"), route("big", rules)]);
    expect(issue!.path).toBe("resources[1].spec.rules");
    expect(issue!.message).toMatch(new RegExp(`at most ${MAX_MATCHES_PER_ROUTE}`));
  });

  it("refuses more routes on one Service, and more matches per destination, than the limits", () => {
    const routes = Array.from({ length: MAX_ROUTES_PER_SERVICE + 1 }, (_, i) =>
      route(`r${i}`, [{ matches: [pathMatch(i)] }]),
    );
    expect(issues([service("echo"), ...routes])[0]!.message).toMatch(/65 HTTPRoutes attached/);

    // 16 routes of two rules of 33 matches: each route within its own limit, 1056 in all.
    const wide = Array.from({ length: 16 }, (_, r) =>
      route(
        `w${r}`,
        [0, 1].map((half) => ({
          matches: Array.from({ length: 33 }, (_, i) => pathMatch(r * 66 + half * 33 + i)),
        })),
      ),
    );
    expect(issues([service("echo"), ...wide])[0]!.message).toMatch(
      new RegExp(`limit is ${MAX_MATCHES_PER_DESTINATION}`),
    );
  });

  it("refuses a regex whose RE2 program is too large, and too much regex work per destination", () => {
    const big = issues([
      service("echo"),
      route("r", [{ matches: [{ path: { type: "RegularExpression", value: "/(?:a?){200}" } }] }]),
    ]);
    expect(big[0]!.path).toBe("resources[1].spec.rules[0].matches[0].path.value");
    expect(big[0]!.message).toMatch(/RE2 program of size \d+; the limit is 256/);

    const pattern = "/x[a-z0-9]{200}"; // a program of a little over 200
    const routes = Array.from({ length: 25 }, (_, i) =>
      route(`r${i}`, [
        { matches: [{ path: { type: "RegularExpression", value: `${pattern}${i}` } }] },
      ]),
    );
    expect(issues([service("echo"), ...routes])[0]!.message).toMatch(
      /cost \d+ in all \(each its RE2 program size, at least 64\); the limit is 4096/,
    );
  });

  it("counts every pattern at least 64, so many tiny regexes cannot add up to unbounded work", () => {
    // 65 patterns like `.*b` (program size 5): each run still reads its whole input.
    const rules = Array.from({ length: 13 }, (_, r) => ({
      matches: Array.from({ length: 5 }, (_, i) => ({
        headers: [{ type: "RegularExpression", name: "x-h", value: `.*b${r * 5 + i}` }],
      })),
    }));
    expect(issues([service("echo"), route("tiny", rules)])[0]!.message).toMatch(
      /cost 4160 in all .*the limit is 4096/,
    );
  });

  it("the router reports a hand-written entry's invalid regex by its field, not as an exception", () => {
    const valid = validateResources([service("echo"), route("r", [{}])]);
    if (!valid.ok) throw new Error("bad fixture");
    const entry = JSON.parse(
      JSON.stringify({
        schema: 1,
        service: valid.value.services[0],
        routes: valid.value.routes,
        backends: [],
      }),
    );
    entry.routes[0].spec.rules[0].matches = [
      { path: { type: "RegularExpression", value: "/(a)\\1" } },
    ];
    const parsed = parseEntry(entry, "mesh/dest/echo/x");
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) {
      expect(parsed.issues[0]!.path).toBe(
        "mesh/dest/echo/x.routes[0].spec.rules[0].matches[0].path.value",
      );
      expect(parsed.issues[0]!.message).toMatch(/not a valid RE2 regular expression/);
    }
  });

  it("the router refuses a hand-written entry beyond the per-destination limits", () => {
    const routes = Array.from({ length: MAX_ROUTES_PER_SERVICE + 1 }, (_, i) =>
      route(`r${i}`, [{ matches: [pathMatch(i)] }]),
    );
    const valid = validateResources([service("echo"), routes[0]]);
    if (!valid.ok) throw new Error("bad fixture");
    const entry = {
      schema: 1,
      service: valid.value.services[0],
      routes: routes.map(() => valid.value.routes[0]),
      backends: [],
    };
    const parsed = parseEntry(entry, "mesh/dest/echo/x");
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.issues[0]!.message).toMatch(/65 HTTPRoutes attached/);
  });

  it("refuses a snapshot entry larger than the entry limit", () => {
    const fat = { annotations: { note: "x".repeat(MAX_ANNOTATIONS_LENGTH) } };
    const backends = Array.from({ length: 140 }, (_, i) => service(`b${i}`, fat));
    const rules = Array.from({ length: 10 }, (_, r) => ({
      backendRefs: backends.slice(r * 14, r * 14 + 14).map((b) => ({ name: b.metadata.name })),
    }));
    const valid = validateResources([service("echo"), ...backends, route("fan", rules)]);
    if (!valid.ok) throw new Error(JSON.stringify(valid.issues));
    const build = buildSnapshot(valid.value, 1, new Date());
    expect(build.ok).toBe(false);
    if (!build.ok) {
      expect(build.issues[0]!.path).toBe("Service/echo");
      expect(build.issues[0]!.message).toMatch(new RegExp(`limit is ${MAX_ENTRY_BYTES}`));
    }
  });
});
