// meshctl check against a fake admin API: every ✓ when the mesh is healthy, and a ✗ that says
// what to do (a binding the router lacks, a router behind, drift, no server, a refused token)
// with exit 1.
import { describe, expect } from "vitest";
import { fixtureResources, meshctl, meshctlProcess, test } from "./run-meshctl.ts";
import { FAKE_TOKEN } from "./fake-admin.ts";

const now = () => new Date().toISOString();

describe("meshctl check", () => {
  test("passes with every ✓ when the config is valid, bound, published and run by every router", async ({
    fake,
    run,
  }) => {
    fake.seed(fixtureResources("mesh"));
    fake.routers = [
      { isolate: "a1", colo: "LHR", version: 1, reportedAt: now() },
      { isolate: "b2", colo: "SJC", version: 1, reportedAt: now() },
    ];
    const result = await run("check");
    expect(result.code, result.stdout).toBe(0);
    expect(result.stdout).toContain(`✓ admin API reachable at ${fake.url}`);
    expect(result.stdout).toContain("✓ authenticated with the token from --token");
    expect(result.stdout).toContain("✓ config version 1 is valid: 3 Services, 1 HTTPRoute");
    expect(result.stdout).toContain(
      "✓ every Service's bindings are declared in wrangler.toml (3 Services)",
    );
    expect(result.stdout).toContain("✓ no references to missing resources");
    expect(result.stdout).toMatch(/✓ version 1 published to KV \d+s ago/);
    expect(result.stdout).toContain("✓ no drift between KV and the store");
    expect(result.stdout).toContain("✓ all 2 routers report version 1, the published one\n");
    expect(result.stdout).not.toContain("✗");
    expect(result.stdout.trimEnd().split("\n").at(-1)).toBe("✓ all checks passed");
  });

  test("in the second before a publish, measures routers by the published version: publish pending, no ✗", async ({
    fake,
    run,
  }) => {
    fake.seed(fixtureResources("mesh"));
    fake.seed(fixtureResources("mesh-v2.yaml"));
    fake.published = { version: 1, at: now(), nextAttemptAt: now() };
    fake.routers = [
      { isolate: "a1", colo: "LHR", version: 1, reportedAt: now() },
      { isolate: "b2", colo: "SJC", version: 1, reportedAt: now() },
    ];
    const result = await run("check");
    expect(result.code, result.stdout).toBe(0);
    expect(result.stdout).toMatch(
      /^⚠ version 2: publish pending \(KV holds version 1; the store publishes at most once a second, next at \S+\)$/m,
    );
    expect(result.stdout).toContain(
      "✓ all 2 routers report version 1, the published one (version 2: publish pending)\n",
    );
    expect(result.stdout).not.toContain("✗");
    // A router behind the published version is still a failure.
    fake.routers.push({ isolate: "c3", colo: "NRT", version: 0, reportedAt: now() });
    const behind = await run("check");
    expect(behind.code).toBe(1);
    expect(behind.stdout).toContain(
      "✗ 2 of 3 routers report version 1, the published one (version 2: publish pending)",
    );
  });

  test("fails on a Service whose binding the router lacks and a router behind, and warns about dangling references", async ({
    fake,
  }) => {
    // Written by another client, so never checked against this router's wrangler.toml.
    fake.seed([
      ...fixtureResources("unbound.yaml"),
      ...fixtureResources("dangling.yaml").filter((r) => r.kind === "HTTPRoute"),
    ]);
    fake.routers = [
      { isolate: "a1", colo: "LHR", version: 1, reportedAt: now() },
      { isolate: "b2", colo: "SJC", version: 0, reportedAt: now() },
      { isolate: "c3", colo: "NRT", version: 1, reportedAt: now(), error: "version 2 refused" },
    ];
    fake.drift = { kvVersion: 7, publishedVersion: 1, message: "mesh/index was edited in KV" };
    // Its own process, for the exit code a CI job would see.
    const result = await meshctlProcess(["check", "--server", fake.url, "--token", FAKE_TOKEN]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(
      "✗ Service/echo-v9 names binding ECHO_V9, which wrangler.toml does not declare: needs a router binding and a redeploy",
    );
    expect(result.stdout).toContain(
      "⚠ 1 reference to missing resources (what they would get is answered 500, or not mirrored or failed over)\n" +
        "    HTTPRoute/echo.spec.rules[0].backendRefs[0].name: names Service 'echo-v7', which does not exist",
    );
    expect(result.stdout).toContain("✗ KV was edited outside the store: KV holds version 7");
    expect(result.stdout).toContain("✗ 2 of 3 routers report version 1, the published one\n");
    expect(result.stdout).toMatch(/isolate b2 \(SJC\) runs version 0, reported \d+s ago/);
    expect(result.stdout).toContain(
      "✗ 1 router reports a config error\n    isolate c3 (NRT): version 2 refused",
    );
    expect(result.stdout.trimEnd().split("\n").at(-1)).toBe("✗ 4 checks failed");
  });

  test("fails at the first check when the admin API is unreachable", async ({ fake }) => {
    const url = fake.url;
    await fake.close();
    const result = await meshctl(["check", "--server", url]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`✗ admin API not reachable at ${url}: connection refused`);
    expect(result.stdout).toContain("is `npm start` running? is --server right?");
    expect(result.stdout).not.toContain("✓");
  });

  test("fails with how to pass a token when the admin API refuses the credential", async ({
    fake,
  }) => {
    const result = await meshctl(["check", "--server", fake.url, "--token", "wrong"]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`✓ admin API reachable at ${fake.url}`);
    expect(result.stdout).toContain(
      "✗ not authenticated: the admin API refused the token from --token",
    );
    expect(result.stdout).toContain("ADMIN_TOKEN");
  });
});
