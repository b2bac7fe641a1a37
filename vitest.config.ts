// Three test tiers: the pure core in plain Node; the Workers in workerd through
// @cloudflare/vitest-plugin (the router as the Worker under test, the example services and
// fixtures beside it as auxiliary Workers, with real KV); and end to end, `npm start` itself
// (wrangler dev and workerd as real processes, called over HTTP).
import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { configDefaults, defineConfig } from "vitest/config";
import { IDENTITY_VARS } from "./scripts/workerd.mjs";
import { TEST_ADMIN_TOKEN } from "./test/helpers/open-mesh.ts";

const COMPATIBILITY_DATE = "2026-11-01";
// The name the plugin gives the Worker under test (the router) in the "workers" project.
const RUNNER_NAME = "vitest-plugin-runner-workers";

function auxiliary(name: string, script: string, bindings: Record<string, string> = {}) {
  return {
    name,
    modules: true,
    scriptPath: `./test/.build/${script}.js`,
    compatibilityDate: COMPATIBILITY_DATE,
    bindings,
  };
}

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "core",
          include: ["core/**/*.test.ts"],
          environment: "node",
        },
      },
      {
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              // Test-only destinations beside the demo ones the router's config binds.
              serviceBindings: { RECORDER: "recorder" },
              // The admin token of /.mesh/status (test/helpers/open-mesh.ts).
              bindings: { ADMIN_TOKEN: TEST_ADMIN_TOKEN },
              kvNamespaces: { RECORDINGS: "recordings" },
              workers: [
                // The identity Worker the router's IDENTITY binding names, with its keys' object
                // and the router's KV namespace (credentials and revocations).
                {
                  ...auxiliary("meshwork-identity", "identity", IDENTITY_VARS),
                  durableObjects: { SIGNING_KEYS: "SigningKeys" },
                  kvNamespaces: { MESH_CONFIG: "meshwork-config" },
                },
                auxiliary("echo-v1", "echo", { SERVICE_NAME: "echo-v1", VERSION: "v1" }),
                auxiliary("echo-v2", "echo", { SERVICE_NAME: "echo-v2", VERSION: "v2" }),
                auxiliary("echo-v3", "echo", { SERVICE_NAME: "echo-v3", VERSION: "v3" }),
                auxiliary("payments-v1", "payments", {
                  SERVICE_NAME: "payments-v1",
                  VERSION: "v1",
                }),
                auxiliary("payments-v2", "payments", {
                  SERVICE_NAME: "payments-v2",
                  VERSION: "v2",
                }),
                {
                  ...auxiliary("recorder", "recorder"),
                  kvNamespaces: { RECORDINGS: "recordings" },
                },
                // The demo caller, with its binding to the router's Mesh entrypoint exactly as in
                // examples/orders/wrangler.toml (the router runs under the runner's name here).
                {
                  ...auxiliary("orders", "orders"),
                  serviceBindings: {
                    PAYMENTS: {
                      name: RUNNER_NAME,
                      entrypoint: "Mesh",
                      props: { caller: "orders", target: "payments" },
                    },
                  },
                },
              ],
            },
          }),
        ],
        test: {
          name: "workers",
          include: ["test/**/*.test.ts", "workers/**/*.test.ts"],
          exclude: [...configDefaults.exclude, "test/e2e/**", "test/http/**", "test/identity/**"],
          globalSetup: ["./test/global-setup.ts"],
        },
      },
      {
        // The identity Worker as the Worker under test, with its SigningKeys Durable Object.
        plugins: [cloudflareTest({ wrangler: { configPath: "./workers/identity/wrangler.toml" } })],
        test: {
          name: "identity",
          include: ["test/identity/**/*.test.ts"],
        },
      },
      {
        test: {
          name: "http",
          include: ["test/http/**/*.test.ts"],
          environment: "node",
        },
      },
      {
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          environment: "node",
          // Starting wrangler dev with seven Workers takes a while on a small CI machine.
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
