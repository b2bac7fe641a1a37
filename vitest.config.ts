// Three test tiers: the pure core in plain Node; the Workers in workerd through
// @cloudflare/vitest-plugin (the router as the Worker under test, the example services and
// fixtures beside it as auxiliary Workers, with real KV); and end to end, `npm start` itself
// (wrangler dev and workerd as real processes, called over HTTP).
import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { configDefaults, defineConfig } from "vitest/config";
import { WORKERS, worker, workerBindings } from "./scripts/workers.mjs";
import { TEST_ADMIN_TOKEN } from "./test/helpers/open-mesh.ts";
import {
  ADMIN_SERVICE,
  POLICY_ADMIN_TOKEN,
  STRANGER_SERVICE,
  VIEWER_SERVICE,
} from "./test/policy/constants.ts";

const COMPATIBILITY_DATE = "2026-11-01";
/** The router: the Worker under test of the "workers" project, not an auxiliary one. */
const ROUTER = WORKERS[0]!.name;
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

/**
 * A Worker of scripts/workers.mjs as an auxiliary Worker: its test build, wired as its own
 * wrangler config says — vars, KV namespaces, Durable Objects, service bindings (one to the
 * router names the runner, the router's name here) — plus test-only `bindings`.
 */
function auxiliaryWorker(name: string, bindings: Record<string, string> = {}) {
  const { build, config } = worker(name);
  if (!build) throw new Error(`${name} has no test build in scripts/workers.mjs`);
  const declared = workerBindings(config);
  return {
    ...auxiliary(name, build, { ...declared.vars, ...bindings }),
    kvNamespaces: declared.kvNamespaces,
    durableObjects: Object.fromEntries(
      Object.entries(declared.durableObjects).map(([binding, { className, sqlite }]) => [
        binding,
        { className, useSQLite: sqlite },
      ]),
    ),
    serviceBindings: Object.fromEntries(
      Object.entries(declared.services).map(([binding, { service, entrypoint, props }]) => [
        binding,
        { name: service === ROUTER ? RUNNER_NAME : service, entrypoint, props },
      ]),
    ),
  };
}

/**
 * Test-only vars of auxiliary Workers: the policy Worker's admin token (test/helpers/open-mesh.ts),
 * a secret, so in no wrangler config.
 */
const TEST_BINDINGS: Record<string, Record<string, string>> = {
  "meshwork-policy": { ADMIN_TOKEN: TEST_ADMIN_TOKEN },
};

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
              // The admin token of /.mesh/status (test/helpers/open-mesh.ts). Metrics flushes
              // and access-log lines off: most tests wait for each call's waitUntil, which would
              // then hold a second's flush; the telemetry tests turn them on in their own env.
              bindings: {
                ADMIN_TOKEN: TEST_ADMIN_TOKEN,
                METRICS_FLUSH: "off",
                ACCESS_LOG_SAMPLE: "0",
              },
              kvNamespaces: { RECORDINGS: "recordings" },
              workers: [
                // Every other Worker of the manifest, as its wrangler config wires it: the
                // identity and policy Workers the router's IDENTITY and POLICY bindings name,
                // the demo destinations, and `orders` calling through the router's Mesh
                // entrypoint.
                ...WORKERS.filter((w) => w.name !== ROUTER).map((w) =>
                  auxiliaryWorker(w.name, TEST_BINDINGS[w.name]),
                ),
                // A test-only destination.
                {
                  ...auxiliary("recorder", "recorder"),
                  kvNamespaces: { RECORDINGS: "recordings" },
                },
              ],
            },
          }),
        ],
        test: {
          name: "workers",
          include: ["test/**/*.test.ts", "workers/**/*.test.ts"],
          exclude: [
            ...configDefaults.exclude,
            "test/e2e/**",
            "test/http/**",
            "test/identity/**",
            "test/policy/**",
            "test/cli/**",
            "test/browser/**",
          ],
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
        // The policy Worker as the Worker under test, with its PolicyStore Durable Object, the
        // router's KV namespace, and the identity Worker its IDENTITY binding names (for admin
        // SVIDs; the test-only bindings below get SVIDs for an admin, a viewer and a stranger).
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./workers/policy/wrangler.toml" },
            miniflare: {
              bindings: {
                ADMIN_TOKEN: POLICY_ADMIN_TOKEN,
                ADMIN_SERVICES: ADMIN_SERVICE,
                VIEWER_SERVICES: VIEWER_SERVICE,
              },
              serviceBindings: {
                ...Object.fromEntries(
                  [ADMIN_SERVICE, VIEWER_SERVICE, STRANGER_SERVICE].map((service) => [
                    `IDENTITY_AS_${service.toUpperCase()}`,
                    { name: "meshwork-identity", entrypoint: "Identity", props: { service } },
                  ]),
                ),
                // Its HTTP entry, as a workload outside Workers reaches it (POST /v1/svid).
                IDENTITY_HTTP: "meshwork-identity",
              },
              workers: [auxiliaryWorker("meshwork-identity")],
            },
          }),
        ],
        test: {
          name: "policy",
          include: ["test/policy/**/*.test.ts"],
          globalSetup: ["./test/global-setup.ts"],
        },
      },
      {
        test: {
          name: "cli",
          include: ["test/cli/**/*.test.ts"],
          environment: "node",
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
      {
        test: {
          // The dashboard in headless Chromium (Debian's, driven by playwright-core) against
          // `npm start` with demo traffic; skipped, loudly, where there is no Chromium.
          name: "browser",
          include: ["test/browser/**/*.test.ts"],
          environment: "node",
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
