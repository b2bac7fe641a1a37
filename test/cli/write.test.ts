// meshctl delete and rollback against a fake admin API: what is sent, what the user reads, and
// the errors a write can meet (absent resource or version, conflict, a viewer's credential).
import { describe, expect } from "vitest";
import { VIEWER_SVID } from "./fake-admin.ts";
import { fixtureResources, meshctl, test } from "./run-meshctl.ts";

describe("meshctl delete", () => {
  test("deletes one resource as a new version, with If-Match, and warns about what referred to it", async ({
    fake,
    run,
  }) => {
    fake.seed(fixtureResources("mesh"));
    const result = await run("delete", "svc", "echo-v2", "--if-match", "1");
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(
      "✓ deleted Service/echo-v2: now version 2\n  - Service/echo-v2",
    );
    expect(result.stderr).toContain(
      "⚠ HTTPRoute/echo.spec.rules[0].backendRefs[1].name: names Service 'echo-v2', which does not exist",
    );
    expect(fake.requests[0]).toMatchObject({
      method: "DELETE",
      path: "/v1/resources/Service/echo-v2",
    });
    expect(fake.requests[0]!.headers["if-match"]).toBe('"1"');
  });

  test("says what to do when the resource does not exist", async ({ fake, run }) => {
    fake.seed(fixtureResources("mesh"));
    const result = await run("delete", "route", "nope");
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("✗ no HTTPRoute named 'nope'; nothing deleted");
  });

  test("needs a kind and a name", async ({ run }) => {
    const result = await run("delete", "svc");
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("✗ delete needs a KIND and a NAME");
  });

  test("on a version conflict, names the current version and how to re-run", async ({
    fake,
    run,
  }) => {
    fake.seed(fixtureResources("mesh"));
    fake.seed(fixtureResources("mesh-v2.yaml"));
    const result = await run("delete", "svc", "echo", "--if-match", "1");
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      "✗ the config changed (now version 2); re-run with --if-match 2 or without",
    );
    expect(fake.versions).toHaveLength(2);
  });

  test("with a viewer's SVID, explains that writing needs an admin credential (403)", async ({
    fake,
  }) => {
    fake.seed(fixtureResources("mesh"));
    const result = await meshctl([
      "delete",
      "svc",
      "echo",
      "--server",
      fake.url,
      "--svid",
      VIEWER_SVID,
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      "✗ the admin API refused DELETE /v1/resources/Service/echo: viewers may not change the config",
    );
    expect(result.stderr).toContain("roles [admin]");
    expect(fake.requests[0]!.headers["x-mesh-svid"]).toBe(VIEWER_SVID);
    expect(fake.requests[0]!.headers.authorization).toBeUndefined();
  });
});

describe("meshctl rollback", () => {
  test("makes a new version equal to an old one and lists what changed", async ({ fake, run }) => {
    fake.seed(fixtureResources("mesh"));
    fake.seed(fixtureResources("mesh-v2.yaml"));
    const result = await run("rollback", "1", "--if-match", "2");
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(
      "✓ rolled back to version 1's config: now version 3\n  ~ HTTPRoute/echo\n  - Service/echo-v3",
    );
    expect(fake.requests[0]).toMatchObject({
      method: "POST",
      path: "/v1/rollback",
      body: { version: 1 },
    });
    expect(fake.requests[0]!.headers["if-match"]).toBe('"2"');
    expect(fake.current().resources).toEqual(fixtureResources("mesh"));
  });

  test("says when there is no such version, and refuses one that is not a number", async ({
    fake,
    run,
  }) => {
    fake.seed([]);
    const missing = await run("rollback", "7");
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("✗ there is no version 7 to roll back to");
    const wrong = await run("rollback", "latest");
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain("VERSION must be a whole number ≥ 1, got 'latest'");
  });
});
