// `npm run publish` as a user runs it: the checks against the router (unknown bindings), dangling
// references as warnings, --help, an old Node, and a large YAML config.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { nodeBinary, runPublish } from "./mesh-process.mjs";

const dir = mkdtempSync(join(tmpdir(), "meshwork-publish-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ROOT = join(import.meta.dirname, "..", "..");

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const service = (name: string, binding: string) => `apiVersion: meshwork.dev/v1
kind: Service
metadata:
  name: ${name}
spec:
  endpoints:
    - binding: ${binding}
`;

describe("npm run publish", () => {
  it("attack: refuses an endpoint binding the router does not declare, naming it and wrangler.toml, even with --dry-run", async () => {
    const config = file(
      "typo.yaml",
      `${service("payments", "PAYMENTS_V1")}---\n${service("payments-v9", "PAYMENTS_V9")}`,
    );
    const result = await runPublish(["--config", config, "--dry-run"]);
    expect(result.code).toBe(1);
    expect(result.output).toMatch(
      /resources\[1\]\.spec\.endpoints\[0\]\.binding: the router has no service binding 'PAYMENTS_V9': wrangler\.toml declares ECHO_V1, ECHO_V2, ECHO_V3, ORDERS, PAYMENTS_V1, PAYMENTS_V2/,
    );
    expect(result.output).toMatch(/resources\[1\] starts at line 9/);
  });

  it("warns about a backendRef to a missing Service, and refuses it with --strict", async () => {
    const route = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: payments
spec:
  parentRefs: [{ name: payments }]
  rules:
    - backendRefs: [{ name: payments-v3 }]
`;
    const config = file("dangling.yaml", `${service("payments", "PAYMENTS_V1")}---\n${route}`);
    const lenient = await runPublish(["--config", config, "--dry-run"]);
    expect(lenient.code, lenient.output).toBe(0);
    expect(lenient.output).toMatch(
      /⚠ resources\[1\]\.spec\.rules\[0\]\.backendRefs\[0\]\.name: names Service 'payments-v3', which does not exist; requests for it will be answered 500/,
    );
    const strict = await runPublish(["--config", config, "--dry-run", "--strict"]);
    expect(strict.code).toBe(1);
    expect(strict.output).toMatch(/is not a valid mesh config/);
  });

  it("refuses a policy that targets a missing Service, with or without --strict", async () => {
    const policy = `apiVersion: meshwork.dev/v1
kind: AuthorizationPolicy
metadata:
  name: payments-callers
spec:
  targetRefs: [{ kind: Service, name: payment }]
  rules: [{ from: [{ source: { principals: ["*"] } }] }]
`;
    const config = file("detached.yaml", `${service("payments", "PAYMENTS_V1")}---\n${policy}`);
    for (const extra of [[], ["--strict"]]) {
      const result = await runPublish(["--config", config, "--dry-run", ...extra]);
      expect(result.code, result.output).toBe(1);
      expect(result.output).toMatch(
        /resources\[1\]\.spec\.targetRefs\[0\]\.name: names Service 'payment', which does not exist: an AuthorizationPolicy attached to nothing/,
      );
    }
  });

  it("reads --config relative to the directory it is run from", async () => {
    file("here.yaml", service("echo", "ECHO_V1"));
    const result = await runPublish(["--config", "here.yaml", "--dry-run"], { cwd: dir });
    expect(result.code, result.output).toBe(0);
    expect(result.output).toMatch(/here\.yaml is valid \(1 Services, 0 HTTPRoutes\)/);
  });

  it("explains itself with --help, and an unknown option with the usage", async () => {
    const help = await runPublish(["--help"]);
    expect(help.code).toBe(0);
    expect(help.output).toMatch(/Usage: npm run publish -- \[options\]/);
    expect(help.output).toMatch(/--persist-to DIR/);
    const wrong = await runPublish(["--remtoe"]);
    expect(wrong.code).toBe(2);
    expect(wrong.output).toMatch(/Unknown option '--remtoe'[\s\S]*Usage:/);
  });

  it("says plainly that an old Node is too old, instead of a raw loader error", () => {
    // The script run directly by a Node older than 22.18 (here: one that says it is 20).
    const result = spawnSync(
      nodeBinary(),
      [
        "--input-type=module",
        "-e",
        `Object.defineProperty(process.versions, "node", { value: "20.20.2" });
         process.argv = [process.argv[0], "--dry-run"]; // in -e mode, arguments start at [1]
         await import(${JSON.stringify(join(ROOT, "scripts", "publish.mjs"))});`,
      ],
      { encoding: "utf8" },
    );
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(
      /Node 20\.20\.2 is too old for npm run publish: it needs Node ≥ 22\.18/,
    );
    expect(result.stderr).not.toMatch(/ERR_UNKNOWN_FILE_EXTENSION/);
  });

  it(
    "validates 16,000 YAML documents in seconds (parsing is linear)",
    async () => {
      const documents: string[] = [];
      for (let i = 0; i < 8000; i++) {
        documents.push(service(`svc-${i}`, "ECHO_V1"));
        documents.push(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: route-${i}
spec:
  parentRefs: [{ name: svc-${i} }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /api } }]
      backendRefs: [{ name: svc-${i} }]
`);
      }
      const config = file("big.yaml", documents.join("---\n"));
      const result = await runPublish(["--config", config, "--dry-run"]);
      expect(result.code, result.output).toBe(0);
      expect(result.output).toMatch(/is valid \(8000 Services, 8000 HTTPRoutes\)/);
    },
    // Quadratic parsing took a minute for this file; linear takes about 3 s. The bound only
    // catches the difference.
    30_000,
  );
});
