// meshctl validate: offline, with the router's schemas and wrangler.toml's bindings; every issue
// with file and line; exit codes a script can rely on. No server is running for these.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FIXTURES, meshctl, meshctlProcess } from "./run-meshctl.ts";

// Nothing listens here: validate must not need the admin API.
const offline = { env: { MESH_ADMIN_URL: "http://127.0.0.1:1" } };
const fixture = (name: string) => join(FIXTURES, name);

describe("meshctl validate", () => {
  it("accepts a valid directory, counting its resources by kind, without a server", async () => {
    const result = await meshctl(["validate", "-f", fixture("mesh")], offline);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(
      "✓ test/cli/fixtures/mesh/ (2 files) is a valid mesh config: 3 Services, 1 HTTPRoute\n",
    );
  });

  it("prints every issue as file:line: path: message and exits 1", async () => {
    const result = await meshctl(["validate", "-f", fixture("invalid.yaml")], offline);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      [
        "✗ test/cli/fixtures/invalid.yaml is not a valid mesh config (2 issues)",
        "  test/cli/fixtures/invalid.yaml:10: resources[1].spec.endpoints[0].binding: must be a binding name such as ECHO_V1 (letters, digits, '_')",
        "  test/cli/fixtures/invalid.yaml:18: resources[2].spec.rules[0].backendRefs[0].weight: Too small: expected number to be >=0",
        "",
      ].join("\n"),
    );
  });

  it("warns about a reference to a missing Service, and refuses it with --strict", async () => {
    const warning =
      "test/cli/fixtures/dangling.yaml:10: resources[1].spec.rules[0].backendRefs[0].name: names Service 'echo-v7', which does not exist";
    const lenient = await meshctl(["validate", "-f", fixture("dangling.yaml")], offline);
    expect(lenient.code).toBe(0);
    expect(lenient.stderr).toContain(`⚠ ${warning}`);
    const strict = await meshctl(["validate", "-f", fixture("dangling.yaml"), "--strict"], offline);
    expect(strict.code).toBe(1);
    expect(strict.stderr).toContain(`  ${warning}`);
  });

  it("refuses a policy that targets a missing Service, with or without --strict", async () => {
    for (const args of [[], ["--strict"]]) {
      const result = await meshctl(["validate", "-f", fixture("detached.yaml"), ...args], offline);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(
        /^✗ test\/cli\/fixtures\/detached\.yaml is not a valid mesh config \(1 issue\)\n {2}test\/cli\/fixtures\/detached\.yaml:10: resources\[1\]\.spec\.targetRefs\[0\]\.name: names Service 'echo-v7', which does not exist: a BackendPolicy attached to nothing would apply to no call/,
      );
    }
  });

  it("names the line of a YAML syntax error, and a missing file", async () => {
    // Written here, not kept as a fixture: the formatter would refuse a broken YAML file.
    const dir = mkdtempSync(join(tmpdir(), "meshctl-validate-"));
    try {
      const broken = join(dir, "broken.yaml");
      writeFileSync(broken, "kind: Service\nmetadata:\n  name: echo\nspec:\n  endpoints: [\n");
      const result = await meshctl(["validate", "-f", broken], offline);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/✗ \S*broken\.yaml is not valid YAML\n {2}line 6: /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const missing = await meshctl(["validate", "-f", fixture("nope.yaml")], offline);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`✗ no such file or directory: ${fixture("nope.yaml")}`);
  });

  it("reads -f relative to the directory it runs in, with no server", async () => {
    const result = await meshctlProcess(["validate", "-f", "mesh-v2.yaml"], {
      ...offline,
      cwd: "test/cli/fixtures",
    });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain("mesh-v2.yaml is a valid mesh config: 4 Services, 1 HTTPRoute");
  });
});
