// meshctl apply and diff against a fake admin API: offline validation first (nothing sent when
// it fails), what is sent (dry run, prune, If-Match, author), and what the user reads back.
import { join } from "node:path";
import { describe, expect } from "vitest";
import { FAKE_TOKEN, type StoredResource } from "./fake-admin.ts";
import { FIXTURES, fixtureResources, meshctlProcess, test } from "./run-meshctl.ts";

const MESH_DIR = join(FIXTURES, "mesh");
const names = (resources: unknown) =>
  (resources as StoredResource[]).map((r) => `${r.kind}/${r.metadata.name}`);

describe("meshctl apply", () => {
  test("applies every config file of a directory in name order, printing the new version and what changed", async ({
    fake,
  }) => {
    // As a user runs it: its own process, the author from $USER.
    const result = await meshctlProcess([
      "apply",
      "-f",
      MESH_DIR,
      "--server",
      fake.url,
      "--token",
      FAKE_TOKEN,
    ]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(
      "✓ applied 4 resources from test/cli/fixtures/mesh/ (2 files): now version 1",
    );
    expect(result.stdout).toContain(
      "  + HTTPRoute/echo\n  + Service/echo\n  + Service/echo-v1\n  + Service/echo-v2\n",
    );
    const [request] = fake.requests;
    expect(request).toMatchObject({ method: "POST", path: "/v1/apply", query: {} });
    expect(request!.headers.authorization).toBe(`Bearer ${FAKE_TOKEN}`);
    expect(request!.headers["x-mesh-author"]).toBe("tester");
    expect(request!.headers["if-match"]).toBeUndefined();
    // The YAML file's documents, then the JSON file's; NOTES.txt is not read.
    expect(names((request!.body as { resources: unknown }).resources)).toEqual([
      "Service/echo",
      "Service/echo-v1",
      "Service/echo-v2",
      "HTTPRoute/echo",
    ]);
    expect(fake.current().version).toBe(1);
  });

  test("with --dry-run, shows the validation result and the diff, and says nothing changed", async ({
    fake,
    run,
  }) => {
    fake.seed(fixtureResources("mesh"));
    const result = await run("apply", "-f", join(FIXTURES, "mesh-v2.yaml"), "--dry-run");
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain("✓ test/cli/fixtures/mesh-v2.yaml: 5 resources, valid");
    expect(result.stdout).toContain(
      "would change version 1:\n  + Service/echo-v3\n  ~ HTTPRoute/echo",
    );
    expect(result.stdout.trimEnd().split("\n").at(-1)).toBe("dry run: nothing changed");
    expect(fake.requests[0]!.query).toEqual({ dryRun: "true" });
    expect(fake.versions).toHaveLength(1);
  });

  test("says when an apply changes nothing", async ({ fake, run }) => {
    fake.seed(fixtureResources("mesh"));
    const result = await run("apply", "-f", MESH_DIR);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("✓ no changes: version 1 already holds the 4 resources");
    expect(fake.versions).toHaveLength(1);
  });

  test("sends --prune and --if-match, and lists what was removed", async ({ fake, run }) => {
    fake.seed([{ kind: "Service", metadata: { name: "old" } }]);
    const result = await run("apply", "-f", MESH_DIR, "--prune", "--if-match", "1");
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain("now version 2");
    expect(result.stdout).toContain("  - Service/old");
    expect(fake.requests[0]!.query).toEqual({ prune: "true" });
    expect(fake.requests[0]!.headers["if-match"]).toBe('"1"');
  });

  test("refuses an invalid config offline, naming file and line of every issue, and sends nothing", async ({
    fake,
    run,
  }) => {
    const result = await run("apply", "-f", join(FIXTURES, "invalid.yaml"));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      "✗ test/cli/fixtures/invalid.yaml is not a valid mesh config (2 issues); nothing was sent",
    );
    expect(result.stderr).toContain(
      "test/cli/fixtures/invalid.yaml:10: resources[1].spec.endpoints[0].binding: must be a binding name",
    );
    expect(result.stderr).toContain(
      "test/cli/fixtures/invalid.yaml:18: resources[2].spec.rules[0].backendRefs[0].weight:",
    );
    expect(fake.requests).toHaveLength(0);
  });

  test("refuses offline a Service whose binding the router's wrangler.toml lacks", async ({
    fake,
    run,
  }) => {
    const result = await run("apply", "-f", join(FIXTURES, "unbound.yaml"));
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /unbound\.yaml:10: resources\[1\]\.spec\.endpoints\[0\]\.binding: the router has no service binding 'ECHO_V9': wrangler\.toml declares/,
    );
    expect(fake.requests).toHaveLength(0);
  });

  test("refuses offline a policy that targets a missing Service, naming its file and line", async ({
    fake,
    run,
  }) => {
    const result = await run("apply", "-f", join(FIXTURES, "detached.yaml"));
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /detached\.yaml:10: resources\[1\]\.spec\.targetRefs\[0\]\.name: names Service 'echo-v7', which does not exist/,
    );
    expect(fake.requests).toHaveLength(0);
  });

  test("prints the server's invalid_config issues with the file they point at", async ({
    fake,
    run,
  }) => {
    fake.nextApplyError = {
      status: 400,
      error: {
        code: "invalid_config",
        message: "the config is not valid",
        issues: [{ path: "resources[3].spec.rules[0]", message: "a check only the server makes" }],
      },
    };
    const result = await run("apply", "-f", MESH_DIR);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      "✗ the admin API refused the config (1 issue); nothing changed",
    );
    // resources[3] is the JSON file's route (JSON has no line numbers).
    expect(result.stderr).toContain(
      "  test/cli/fixtures/mesh/20-routes.json: resources[3].spec.rules[0]: a check only the server makes",
    );
  });

  test("prints the server's warnings (a reference to a missing Service) with file and line", async ({
    run,
  }) => {
    const result = await run("apply", "-f", join(FIXTURES, "dangling.yaml"));
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain(
      "⚠ test/cli/fixtures/dangling.yaml:10: resources[1].spec.rules[0].backendRefs[0].name: names Service 'echo-v7', which does not exist",
    );
  });

  test("on a version conflict, says the current version and how to re-run; nothing changes", async ({
    fake,
    run,
  }) => {
    fake.seed([]);
    fake.seed([]);
    const result = await run("apply", "-f", MESH_DIR, "--if-match", "1");
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      "✗ the config changed (now version 2); re-run with --if-match 2 or without",
    );
    expect(fake.versions).toHaveLength(2);
  });

  test("needs -f, and says so with the usage exit code", async ({ fake, run }) => {
    const result = await run("apply");
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("✗ -f FILE|DIR is required");
    expect(result.stderr).toContain("run `meshctl apply --help` for usage");
    expect(fake.requests).toHaveLength(0);
  });
});

describe("meshctl diff", () => {
  test("shows field-level changes as unified YAML diff lines and changes nothing", async ({
    fake,
    run,
  }) => {
    fake.seed(fixtureResources("mesh"));
    const result = await run("diff", "-f", join(FIXTURES, "mesh-v2.yaml"));
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(
      "--- HTTPRoute/echo (version 1)\n+++ HTTPRoute/echo (test/cli/fixtures/mesh-v2.yaml:34)\n@@ ",
    );
    expect(result.stdout).toMatch(/^-\s+weight: 90\n\+\s+weight: 80$/m);
    expect(result.stdout).toMatch(/^-\s+weight: 10\n\+\s+weight: 20$/m);
    // An added resource is all + lines, as the file writes it (no defaults filled in).
    expect(result.stdout).toContain(
      "--- Service/echo-v3 (absent)\n+++ Service/echo-v3 (test/cli/fixtures/mesh-v2.yaml:26)\n@@ -0,0 +1,",
    );
    expect(result.stdout).toMatch(/^\+ {4}- binding: ECHO_V3\n\n/m);
    // Unchanged resources are not shown, nor are the defaults the schemas fill in on both sides.
    expect(result.stdout).not.toContain("Service/echo-v1 (");
    expect(result.stdout).not.toMatch(/^[-+]\s+kind: Service$/m);
    expect(result.stdout).toContain("1 added, 1 changed, 0 removed (against version 1)");
    // A dry run against the version just read.
    const apply = fake.requests.find((r) => r.path === "/v1/apply")!;
    expect(apply.query).toEqual({ dryRun: "true" });
    expect(apply.headers["if-match"]).toBe('"1"');
    expect(fake.versions).toHaveLength(1);
  });

  test("with --prune shows what would be removed; --exit-code exits 1 when there are changes", async ({
    fake,
    run,
  }) => {
    fake.seed(fixtureResources("mesh-v2.yaml"));
    const result = await run("diff", "-f", MESH_DIR, "--prune", "--exit-code");
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(
      "--- Service/echo-v3 (version 1)\n+++ Service/echo-v3 (removed)",
    );
    expect(result.stdout).toMatch(/^- {4}- binding: ECHO_V3$/m);
    expect(fake.requests.find((r) => r.path === "/v1/apply")!.query).toEqual({
      dryRun: "true",
      prune: "true",
    });
  });

  test("--exit-code holds with -o json too", async ({ fake, run }) => {
    fake.seed(fixtureResources("mesh-v2.yaml"));
    const result = await run("diff", "-f", MESH_DIR, "--prune", "--exit-code", "-o", "json");
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ diff: { removed: ["Service/echo-v3"] } });
  });

  test("says there is nothing to change, exiting 0 even with --exit-code", async ({
    fake,
    run,
  }) => {
    fake.seed(fixtureResources("mesh"));
    const result = await run("diff", "-f", MESH_DIR, "--exit-code");
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(
      "no changes: version 1 already holds test/cli/fixtures/mesh/ (2 files)",
    );
  });
});
