// The admin API as docs/control-plane.md describes it, endpoint by endpoint, through the policy
// Worker's HTTP entry with its real PolicyStore: paths, methods, status codes, bodies, ETags and
// error shapes. Versions are read before each change, so the tests do not depend on their order.
import { describe, expect, it } from "vitest";
import {
  ADMIN,
  apply,
  call,
  currentVersion,
  expectJson,
  route,
  service,
  type ErrorAnswer,
  type WriteAnswer,
} from "./helpers.ts";

describe("GET /health", () => {
  it("answers anyone, saying only that the Worker is up", async () => {
    const response = await call("GET", "/health", { headers: {} });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ ok: true });
  });
});

describe("GET /v1/config", () => {
  it('answers the current version and its resources, with ETag "N"', async () => {
    const { version } = await apply([service("config-a"), service("config-b")]);
    const response = await call("GET", "/v1/config");
    expect(response.status).toBe(200);
    expect(response.headers.get("etag")).toBe(`"${version}"`);
    const body = (await response.json()) as {
      version: number;
      resources: { metadata: { name: string } }[];
    };
    expect(body.version).toBe(version);
    expect(body.resources.map((r) => r.metadata.name)).toEqual(
      expect.arrayContaining(["config-a", "config-b"]),
    );
    expect(body.resources).toContainEqual(service("config-a"));
  });
});

describe("GET /v1/resources/{kind}/{name}", () => {
  it("answers one resource as stored, with the config's version as ETag", async () => {
    const { version } = await apply([service("one", "ECHO_V2", 3)]);
    const response = await call("GET", "/v1/resources/Service/one");
    expect(response.status).toBe(200);
    expect(response.headers.get("etag")).toBe(`"${version}"`);
    expect(await response.json()).toEqual(service("one", "ECHO_V2", 3));
  });

  it("answers 404 not_found for a resource that does not exist", async () => {
    const body = await expectJson<ErrorAnswer>(call("GET", "/v1/resources/Service/nope"), 404);
    expect(body.error.code).toBe("not_found");
  });
});

describe("PUT /v1/resources/{kind}/{name}", () => {
  it("creates, then replaces, a resource: one new version each", async () => {
    const before = await currentVersion();
    const created = await expectJson<WriteAnswer>(
      call("PUT", "/v1/resources/Service/put-me", { body: service("put-me") }),
    );
    expect(created.version).toBe(before + 1);
    expect(created.diff).toEqual({ added: ["Service/put-me"], changed: [], removed: [] });
    const replaced = await call("PUT", "/v1/resources/Service/put-me", {
      body: service("put-me", "ECHO_V3"),
    });
    expect(replaced.headers.get("etag")).toBe(`"${before + 2}"`);
    expect(await replaced.json()).toEqual({
      version: before + 2,
      warnings: [],
      diff: { added: [], changed: ["Service/put-me"], removed: [] },
    });
    expect(await expectJson(call("GET", "/v1/resources/Service/put-me"))).toEqual(
      service("put-me", "ECHO_V3"),
    );
  });

  it("refuses a body whose kind or name is not the path's: 400 bad_request, no version", async () => {
    const before = await currentVersion();
    for (const [path, body] of [
      ["/v1/resources/Service/left", service("right")],
      ["/v1/resources/HTTPRoute/left", service("left")],
      ["/v1/resources/Service/left", { kind: "Service" }],
      ["/v1/resources/Service/left", [service("left")]],
    ] as const) {
      const answer = await expectJson<ErrorAnswer>(call("PUT", path, { body }), 400);
      expect(answer.error.code).toBe("bad_request");
    }
    expect(await currentVersion()).toBe(before);
  });

  it("takes YAML: one document", async () => {
    const yaml = [
      "apiVersion: meshwork.dev/v1",
      "kind: Service",
      "metadata:",
      "  name: from-yaml",
      "spec:",
      "  endpoints:",
      "    - binding: ECHO_V1 # a comment",
      "",
    ].join("\n");
    const answer = await expectJson<WriteAnswer>(
      call("PUT", "/v1/resources/Service/from-yaml", { body: yaml, yaml: true }),
    );
    expect(answer.diff.added).toEqual(["Service/from-yaml"]);
    const two = `${yaml}---\n${yaml}`;
    const refused = await expectJson<ErrorAnswer>(
      call("PUT", "/v1/resources/Service/from-yaml", { body: two, yaml: true }),
      400,
    );
    expect(refused.error.code).toBe("bad_request");
  });

  it("validates the whole resulting config: an issue is named by Kind/name and field path", async () => {
    const before = await currentVersion();
    const body = await expectJson<ErrorAnswer>(
      call("PUT", "/v1/resources/Service/bad-weight", {
        body: service("bad-weight", "ECHO_V1", -1),
      }),
      400,
    );
    expect(body.error.code).toBe("invalid_config");
    expect(body.error.issues).toEqual([
      { path: "Service/bad-weight.spec.endpoints[0].weight", message: expect.any(String) },
    ]);
    expect(await currentVersion()).toBe(before);
  });
});

describe("DELETE /v1/resources/{kind}/{name}", () => {
  it("deletes a resource as a new version", async () => {
    await apply([service("delete-me")]);
    const before = await currentVersion();
    const answer = await expectJson<WriteAnswer>(call("DELETE", "/v1/resources/Service/delete-me"));
    expect(answer).toEqual({
      version: before + 1,
      warnings: [],
      diff: { added: [], changed: [], removed: ["Service/delete-me"] },
    });
    await expectJson(call("GET", "/v1/resources/Service/delete-me"), 404);
  });

  it("answers 404 not_found when there is nothing to delete, and makes no version", async () => {
    const before = await currentVersion();
    const body = await expectJson<ErrorAnswer>(call("DELETE", "/v1/resources/Service/ghost"), 404);
    expect(body.error.code).toBe("not_found");
    expect(await currentVersion()).toBe(before);
  });

  it("warns, naming the stored route by Kind/name, when a delete leaves a reference dangling", async () => {
    await apply([
      service("kept"),
      route("kept-route", "kept", ["kept-backend"]),
      service("kept-backend"),
    ]);
    const answer = await expectJson<WriteAnswer>(
      call("DELETE", "/v1/resources/Service/kept-backend"),
    );
    expect(answer.warnings).toContainEqual({
      path: "HTTPRoute/kept-route.spec.rules[0].backendRefs[0].name",
      message: expect.stringContaining("kept-backend"),
    });
    await expectJson(call("DELETE", "/v1/resources/HTTPRoute/kept-route"));
  });
});

describe("POST /v1/apply", () => {
  it("creates or replaces each resource, all or nothing, and reports warnings", async () => {
    const before = await currentVersion();
    const answer = await apply([
      service("apply-a"),
      route("apply-route", "apply-a", ["apply-missing"]),
    ]);
    expect(answer.version).toBe(before + 1);
    expect(answer.diff).toEqual({
      added: ["Service/apply-a", "HTTPRoute/apply-route"],
      changed: [],
      removed: [],
    });
    // A backendRef to a missing Service is served as 500 for that rule: a warning, not an issue.
    expect(answer.warnings).toContainEqual({
      path: "resources[1].spec.rules[0].backendRefs[0].name",
      message: expect.stringContaining("apply-missing"),
    });
    await expectJson(call("DELETE", "/v1/resources/HTTPRoute/apply-route"));
  });

  it("answers 400 invalid_config with every issue and its path in the request, and changes nothing", async () => {
    const before = await currentVersion();
    const body = await expectJson<ErrorAnswer>(
      call("POST", "/v1/apply", {
        body: {
          resources: [
            service("fine"),
            service("neg", "ECHO_V1", -5),
            { ...service("Not_A_Label") },
            { apiVersion: "meshwork.dev/v1", kind: "Sevrice", metadata: { name: "x" }, spec: {} },
            service("fine"),
          ],
        },
      }),
      400,
    );
    expect(body.error.code).toBe("invalid_config");
    const paths = body.error.issues!.map((issue) => issue.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        "resources[1].spec.endpoints[0].weight",
        "resources[2].metadata.name",
        "resources[3].kind",
      ]),
    );
    for (const issue of body.error.issues!) expect(issue.message).toEqual(expect.any(String));
    expect(await currentVersion()).toBe(before);
    await expectJson(call("GET", "/v1/resources/Service/fine"), 404);
  });

  it("names an issue in a resource already stored by Kind/name", async () => {
    // A mesh has one MeshSettings: a second one clashes with the one stored.
    const settings = (name: string) => ({
      apiVersion: "meshwork.dev/v1",
      kind: "MeshSettings",
      metadata: { name },
      spec: {},
    });
    await apply([settings("mesh")]);
    const body = await expectJson<ErrorAnswer>(
      call("POST", "/v1/apply", { body: { resources: [settings("other")] } }),
      400,
    );
    expect(body.error.issues).toEqual([
      { path: "MeshSettings/mesh", message: "a mesh has one MeshSettings; 'other' is another" },
    ]);
    await expectJson(call("DELETE", "/v1/resources/MeshSettings/mesh"));
  });

  it("?prune=true makes the config exactly the list", async () => {
    await apply([service("prune-a"), service("prune-b")]);
    const answer = await apply([service("prune-a")], "?prune=true");
    expect(answer.diff.removed).toContain("Service/prune-b");
    expect(answer.diff.removed).not.toContain("Service/prune-a");
    const config = await expectJson<{ resources: unknown[] }>(call("GET", "/v1/config"));
    expect(config.resources).toEqual([service("prune-a")]);
  });

  it("a write that changes nothing answers the current version with an empty diff", async () => {
    const { version } = await apply([service("same")]);
    const again = await apply([service("same")]);
    expect(again).toEqual({
      version,
      warnings: [],
      diff: { added: [], changed: [], removed: [] },
    });
    // The same resource with its keys in another order, as YAML: still the same.
    const yaml =
      "kind: Service\nspec: { endpoints: [{ binding: ECHO_V1 }] }\nmetadata: { name: same }\napiVersion: meshwork.dev/v1\n";
    const viaYaml = await expectJson<WriteAnswer>(
      call("POST", "/v1/apply", { body: yaml, yaml: true }),
    );
    expect(viaYaml.version).toBe(version);
    expect(await currentVersion()).toBe(version);
  });

  it("takes YAML, one resource per document", async () => {
    const yaml = [
      "# the demo",
      "apiVersion: meshwork.dev/v1",
      "kind: Service",
      "metadata: { name: yaml-a }",
      "spec: { endpoints: [{ binding: ECHO_V1 }] }",
      "---",
      "---",
      "apiVersion: meshwork.dev/v1",
      "kind: Service",
      "metadata: { name: yaml-b }",
      "spec: { endpoints: [{ binding: ECHO_V2 }] }",
    ].join("\n");
    const answer = await expectJson<WriteAnswer>(
      call("POST", "/v1/apply", { body: yaml, yaml: true }),
    );
    expect(answer.diff.added).toEqual(["Service/yaml-a", "Service/yaml-b"]);
  });

  it("answers 400 bad_request for a body that is not JSON, not YAML, or not { resources }", async () => {
    const before = await currentVersion();
    for (const [body, yaml] of [
      ["{", false],
      ["", false],
      ['[{"kind":"Service"}]', false],
      ['{"resources":[],"extra":1}', false],
      ['{"resources":{}}', false],
      ["kind: [unclosed", true],
      ["a: &x [*x]\n", true],
    ] as const) {
      const answer = await expectJson<ErrorAnswer>(call("POST", "/v1/apply", { body, yaml }), 400);
      expect(answer.error.code).toBe("bad_request");
    }
    expect(await currentVersion()).toBe(before);
  });

  it("refuses a YAML alias bomb without expanding it", async () => {
    const lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i < 30; i++) {
      lines.push(
        `a${i}: &a${i} [${Array(10)
          .fill(`*a${i - 1}`)
          .join(", ")}]`,
      );
    }
    const body = await expectJson<ErrorAnswer>(
      call("POST", "/v1/apply", { body: lines.join("\n"), yaml: true }),
      400,
    );
    expect(body.error.message).toMatch(/aliases/);
  });
});

describe("If-Match", () => {
  it('accepts "N" and N for the current version', async () => {
    const version = await currentVersion();
    const quoted = await expectJson<WriteAnswer>(
      call("PUT", "/v1/resources/Service/if-match", {
        body: service("if-match"),
        headers: { ...ADMIN, "if-match": `"${version}"` },
      }),
    );
    expect(quoted.version).toBe(version + 1);
    const bare = await expectJson<WriteAnswer>(
      call("PUT", "/v1/resources/Service/if-match", {
        body: service("if-match", "ECHO_V2"),
        headers: { ...ADMIN, "if-match": String(version + 1) },
      }),
    );
    expect(bare.version).toBe(version + 2);
  });

  it("answers 412 version_conflict with the current version when it names another, and changes nothing", async () => {
    await apply([service("stale")]);
    const current = await currentVersion();
    for (const method of ["PUT", "DELETE"]) {
      const body = await expectJson<ErrorAnswer>(
        call(method, "/v1/resources/Service/stale", {
          body: method === "PUT" ? service("stale", "ECHO_V3") : undefined,
          headers: { ...ADMIN, "if-match": `"${current - 1}"` },
        }),
        412,
      );
      expect(body.error).toMatchObject({ code: "version_conflict", version: current });
    }
    const applied = await expectJson<ErrorAnswer>(
      call("POST", "/v1/apply", {
        body: { resources: [service("stale-2")] },
        headers: { ...ADMIN, "if-match": "0" },
      }),
      412,
    );
    expect(applied.error.version).toBe(current);
    const rollback = await expectJson<ErrorAnswer>(
      call("POST", "/v1/rollback", {
        body: { version: 1 },
        headers: { ...ADMIN, "if-match": `"${current + 5}"` },
      }),
      412,
    );
    expect(rollback.error.version).toBe(current);
    expect(await currentVersion()).toBe(current);
    expect(await expectJson(call("GET", "/v1/resources/Service/stale"))).toEqual(service("stale"));
  });

  it("answers 400 bad_request for an If-Match that names no version", async () => {
    for (const value of ['W/"1"', "abc", '"1", "2"']) {
      const body = await expectJson<ErrorAnswer>(
        call("DELETE", "/v1/resources/Service/whatever", {
          headers: { ...ADMIN, "if-match": value },
        }),
        400,
      );
      expect(body.error.code).toBe("bad_request");
    }
  });
});

describe("GET /v1/history", () => {
  it("lists versions newest first, with author, time, summary and diff", async () => {
    const first = await apply([service("hist-a")]);
    const second = await apply([service("hist-a", "ECHO_V2"), service("hist-b")], "", {
      "x-mesh-author": "alice",
    });
    const { versions } = await expectJson<{ versions: Record<string, unknown>[] }>(
      call("GET", "/v1/history?limit=2"),
    );
    expect(versions).toHaveLength(2);
    expect(versions[0]).toEqual({
      version: second.version,
      at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      author: "token (alice)",
      summary: "apply: 1 added, 1 changed",
      added: ["Service/hist-b"],
      changed: ["Service/hist-a"],
      removed: [],
    });
    expect(versions[1]).toMatchObject({ version: first.version, author: "token" });
  });

  it("pages with ?before=", async () => {
    const version = await currentVersion();
    const { versions } = await expectJson<{ versions: { version: number }[] }>(
      call("GET", `/v1/history?before=${version}&limit=1`),
    );
    expect(versions.map((v) => v.version)).toEqual([version - 1]);
  });

  it("answers 400 bad_request for a limit that is not a number from 1 to 1000", async () => {
    for (const query of ["limit=0", "limit=x", "limit=1001", "before=-1"]) {
      await expectJson(call("GET", `/v1/history?${query}`), 400);
    }
  });
});

describe("GET /v1/history/{version}", () => {
  it("answers that version's full resource list", async () => {
    const { version } = await apply([service("snap", "ECHO_V1")]);
    await apply([service("snap", "ECHO_V2")]);
    const record = await expectJson<{ version: number; resources: unknown[] }>(
      call("GET", `/v1/history/${version}`),
    );
    expect(record.version).toBe(version);
    expect(record.resources).toContainEqual(service("snap", "ECHO_V1"));
    expect(record.resources).not.toContainEqual(service("snap", "ECHO_V2"));
  });

  it("answers 404 not_found for a version that does not exist", async () => {
    const body = await expectJson<ErrorAnswer>(call("GET", "/v1/history/999999"), 404);
    expect(body.error.code).toBe("not_found");
  });

  it("reads up to 13 digits, as If-Match does: more is 400 bad_request, before asking the store", async () => {
    const thirteen = await expectJson<ErrorAnswer>(call("GET", "/v1/history/9999999999999"), 404);
    expect(thirteen.error.code).toBe("not_found");
    const fourteen = await expectJson<ErrorAnswer>(call("GET", "/v1/history/99999999999999"), 400);
    expect(fourteen.error.code).toBe("bad_request");
    for (const [value, status] of [
      ['"9999999999999"', 412],
      ['"99999999999999"', 400],
    ] as const) {
      await expectJson(
        call("PUT", "/v1/resources/Service/digits", {
          body: service("digits"),
          headers: { ...ADMIN, "if-match": value },
        }),
        status,
      );
    }
  });
});

describe("POST /v1/rollback", () => {
  it("makes a new version equal to version N", async () => {
    const good = await apply([service("roll", "ECHO_V1")]);
    await apply([service("roll", "ECHO_V2"), service("roll-extra")]);
    const before = await currentVersion();
    const answer = await expectJson<WriteAnswer>(
      call("POST", "/v1/rollback", { body: { version: good.version } }),
    );
    expect(answer.version).toBe(before + 1);
    expect(answer.diff).toEqual({
      added: [],
      changed: ["Service/roll"],
      removed: ["Service/roll-extra"],
    });
    const now = await expectJson<{ resources: unknown[] }>(call("GET", "/v1/config"));
    const then = await expectJson<{ resources: unknown[] }>(
      call("GET", `/v1/history/${good.version}`),
    );
    expect(now.resources).toEqual(then.resources);
    const { versions } = await expectJson<{ versions: { summary: string }[] }>(
      call("GET", "/v1/history?limit=1"),
    );
    expect(versions[0]!.summary).toBe(`rollback to version ${good.version}: 1 changed, 1 removed`);
  });

  it("answers 404 not_found for a version that does not exist, 400 for a body without one", async () => {
    const before = await currentVersion();
    await expectJson(call("POST", "/v1/rollback", { body: { version: 424242 } }), 404);
    for (const body of [
      {},
      { version: "1" },
      { version: 1.5 },
      { version: 0 },
      { version: 1, x: 1 },
    ]) {
      await expectJson(call("POST", "/v1/rollback", { body }), 400);
    }
    expect(await currentVersion()).toBe(before);
  });
});

describe("GET /v1/audit", () => {
  it("lists who did what, newest first", async () => {
    const { version } = await apply([service("audited")], "", { "x-mesh-author": "bob" });
    const [entry] = (
      await expectJson<{ entries: Record<string, unknown>[] }>(call("GET", "/v1/audit?limit=1"))
    ).entries;
    expect(entry).toEqual({
      id: expect.any(Number),
      at: expect.any(String),
      actor: "token (bob)",
      action: "POST /v1/apply",
      outcome: "committed",
      version,
      detail: "apply: 1 added",
    });
  });
});

describe("unknown endpoints", () => {
  it("answer 404 not_found in the contract's error shape", async () => {
    for (const [method, path] of [
      ["GET", "/v1/nothing"],
      ["PATCH", "/v1/config"],
      ["GET", "/"],
      ["POST", "/v1/resources/Service"],
    ] as const) {
      const response = await call(method, path);
      expect(response.status).toBe(404);
      expect(((await response.json()) as ErrorAnswer).error.code).toBe("not_found");
    }
  });
});
