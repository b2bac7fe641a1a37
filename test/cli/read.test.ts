// meshctl get, history and status against a fake admin API: each output form, kinds as users
// type them, and what a missing resource or an empty config says.
import { loadAll } from "js-yaml";
import { describe, expect } from "vitest";
import { fixtureResources, test } from "./run-meshctl.ts";

describe("meshctl get", () => {
  test("lists every resource as a KIND NAME table by default", async ({ fake, run }) => {
    fake.seed(fixtureResources("mesh"));
    const result = await run("get");
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(
      [
        "KIND        NAME",
        "Service     echo",
        "Service     echo-v1",
        "Service     echo-v2",
        "HTTPRoute   echo",
        "",
      ].join("\n"),
    );
  });

  test("takes kinds in any case, plural or short", async ({ fake, run }) => {
    fake.seed(fixtureResources("mesh"));
    for (const kind of ["svc", "Services", "SERVICE"]) {
      const result = await run("get", kind, "-o", "name");
      expect(result.stdout, kind).toBe("Service/echo\nService/echo-v1\nService/echo-v2\n");
    }
    const routes = await run("get", "route");
    expect(routes.stdout).toBe("KIND        NAME\nHTTPRoute   echo\n");
    const none = await run("get", "authz");
    expect(none.code).toBe(0);
    expect(none.stderr).toContain("no AuthorizationPolicy resources (config version 1)");
  });

  test("shows one resource as YAML by default, and as JSON with -o json", async ({ fake, run }) => {
    const resources = fixtureResources("mesh");
    fake.seed(resources);
    const yaml = await run("get", "httproutes", "echo");
    expect(yaml.code, yaml.stderr).toBe(0);
    expect(loadAll(yaml.stdout)).toEqual([resources[3]]);
    expect(fake.requests[0]).toMatchObject({ method: "GET", path: "/v1/resources/HTTPRoute/echo" });
    const json = await run("get", "svc/echo-v1", "-o", "json");
    expect(JSON.parse(json.stdout)).toEqual(resources[1]);
  });

  test("prints the whole config as YAML that can be applied again, or as JSON", async ({
    fake,
    run,
  }) => {
    const resources = fixtureResources("mesh");
    fake.seed(resources);
    const yaml = await run("get", "-o", "yaml");
    expect(loadAll(yaml.stdout)).toEqual(resources);
    const json = await run("get", "-o", "json");
    expect(JSON.parse(json.stdout)).toEqual({ version: 1, resources });
  });

  test("says what to do when a resource does not exist, exiting 1", async ({ fake, run }) => {
    fake.seed(fixtureResources("mesh"));
    const result = await run("get", "svc", "nope");
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("✗ no Service named 'nope'");
    expect(result.stderr).toContain("`meshctl get service` lists the Service resources there are");
  });

  test("refuses an unknown kind or output format with the usage exit code, listing the choices", async ({
    fake,
    run,
  }) => {
    const kind = await run("get", "gateways");
    expect(kind.code).toBe(2);
    expect(kind.stderr).toContain(
      "✗ unknown kind 'gateways': one of Service (svc), HTTPRoute (route, routes)",
    );
    const output = await run("get", "-o", "xml");
    expect(output.code).toBe(2);
    expect(output.stderr).toContain("✗ -o must be one of table, yaml, json, name, got 'xml'");
    expect(fake.requests).toHaveLength(0);
  });

  test("says how to add resources when the config is empty", async ({ run }) => {
    const result = await run("get");
    expect(result.code).toBe(0);
    expect(result.stderr).toContain(
      "the config (version 0) holds no resources; `meshctl apply -f FILE` adds some",
    );
  });
});

describe("meshctl history", () => {
  test("lists versions newest first with author and changes, and passes --limit", async ({
    fake,
    run,
  }) => {
    fake.seed(fixtureResources("mesh"), "alice");
    fake.seed(fixtureResources("mesh-v2.yaml"), "bob");
    const result = await run("history", "--limit", "5");
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^VERSION\s+AGE\s+AUTHOR\s+CHANGES\s+SUMMARY$/);
    expect(lines[1]).toMatch(/^2\s+\d+s\s+bob\s+\+1 ~1 -0\s+seeded$/);
    expect(lines[2]).toMatch(/^1\s+\d+s\s+alice\s+\+4 ~0 -0\s+seeded$/);
    expect(fake.requests[0]!.query).toEqual({ limit: "5" });
  });

  test("refuses a --limit that is not a positive whole number", async ({ run }) => {
    const result = await run("history", "--limit", "0");
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("--limit must be a whole number ≥ 1");
  });
});

describe("meshctl status", () => {
  test("shows the version, its publishing, drift and a router table with the verdict", async ({
    fake,
    run,
  }) => {
    fake.seed([]);
    fake.seed([]);
    fake.seed([]);
    // The server's clock is two hours ahead of this machine's: ages are read against it.
    const serverNow = Date.now() + 2 * 3_600_000;
    fake.now = new Date(serverNow).toISOString();
    const ago = (seconds: number) => new Date(serverNow - seconds * 1000).toISOString();
    fake.published = { version: 3, at: ago(4) };
    fake.routers = [
      { isolate: "a1b2", colo: "LHR", version: 3, appliedAt: ago(4), reportedAt: ago(1) },
      { isolate: "c3d4", colo: "SJC", version: 3, appliedAt: ago(3), reportedAt: ago(30) },
      { isolate: "e5f6", colo: "NRT", version: 2, appliedAt: ago(5400), reportedAt: ago(200) },
      { isolate: "g7h8", colo: "SIN", version: null, appliedAt: null, reportedAt: ago(2) },
    ];
    const result = await run("status");
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(
      /^version: {3}3\npublished: version 3, 4s ago\ndrift: {5}none\n$/m,
    );
    // AGE: how long ago the isolate applied its version; REPORTED: its last report.
    expect(result.stdout).toMatch(/^ISOLATE\s+COLO\s+VERSION\s+AGE\s+REPORTED$/m);
    expect(result.stdout).toMatch(/^a1b2\s+LHR\s+3\s+4s\s+1s$/m);
    expect(result.stdout).toMatch(/^e5f6\s+NRT\s+2\s+90m\s+3m$/m);
    expect(result.stdout).toMatch(/^g7h8\s+SIN\s+none\s+-\s+2s$/m);
    expect(result.stdout.trimEnd().split("\n").at(-1)).toBe("version 3 applied by 2 of 4 routers");
  });

  test("says a version the store has yet to publish is pending", async ({ fake, run }) => {
    fake.seed([]);
    fake.seed([]);
    const now = new Date().toISOString();
    fake.published = { version: 1, at: now, nextAttemptAt: now };
    fake.routers = [{ isolate: "a1b2", colo: "LHR", version: 1, appliedAt: now, reportedAt: now }];
    const result = await run("status");
    expect(result.stdout.trimEnd().split("\n").at(-1)).toBe(
      "version 2 applied by 0 of 1 router (publish pending)",
    );
  });

  test("reports drift, a failing publish and a router's config error", async ({ fake, run }) => {
    fake.seed([]);
    fake.seed([]);
    fake.published = {
      version: 1,
      at: new Date().toISOString(),
      lastError: { message: "KV answered 503", failures: 3 },
    };
    fake.drift = { kvVersion: 9, publishedVersion: 1, message: "mesh/index was edited in KV" };
    fake.routers = [
      {
        isolate: "a1b2",
        colo: "LHR",
        version: 1,
        reportedAt: new Date().toISOString(),
        error: "version 2 refused",
      },
    ];
    const result = await run("status");
    expect(result.stdout).toContain(
      "published:     version 1, 0s ago (a newer version is waiting to be published)\n" +
        "publish error: KV answered 503 (3 failures in a row)\n" +
        "drift:         KV holds version 9, the store last published version 1: mesh/index was edited in KV\n",
    );
    expect(result.stdout).toMatch(
      /^ISOLATE\s+COLO\s+VERSION\s+AGE\s+REPORTED\s+ERROR\na1b2\s+LHR\s+1\s+-\s+0s\s+version 2 refused$/m,
    );
    expect(result.stdout).toContain("version 2 applied by 0 of 1 router");
  });

  test("says when no router has reported", async ({ fake, run }) => {
    fake.seed([]);
    const result = await run("status");
    expect(result.stdout).toContain("version 1 applied by 0 of 0 routers");
    expect(result.stdout).toContain("no router has reported yet");
  });
});
