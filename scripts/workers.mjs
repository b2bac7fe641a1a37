// The Workers of this repo and how wrangler is run here; shared by `npm start`, `npm test`
// and `npm run publish`. Plain JavaScript with no TypeScript imports, so it loads on any Node
// and can say clearly when the Node is too old for the rest.
import { existsSync, readFileSync } from "node:fs";
import { parse as parseToml } from "smol-toml";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const WRANGLER = join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js");
/** The router's wrangler config: its service bindings are the destinations it can reach. */
export const ROUTER_CONFIG = join(ROOT, "wrangler.toml");
/** Local state (KV, later Durable Objects) of `npm start`, and where `publish --local` writes. */
export const DEFAULT_PERSIST_DIR = join(ROOT, ".mesh-local", "state");

/**
 * The repository's Workers — the one list that `npm start`, `npm test` (the dry-run deploys and
 * the test setup), `npm run types`, the vitest config and the benchmark read. Per Worker:
 *  - `name`: its Worker name (the wrangler config's `name`);
 *  - `config`: its wrangler config; `source`: its entry module;
 *  - `build`: the bundle the tests build of it (test/.build/<build>.js; versions share one);
 *  - `types`: the Env types `npm run types` generates (`runtime`: with the Workers runtime's);
 *  - `dev`: how `npm start` runs it — `"main"`, in the one `wrangler dev` whose first Worker (the
 *    router) is served on --port, or a process of its own on `port` (option `flag`).
 * The router comes first.
 */
export const WORKERS = [
  {
    name: "meshwork-router",
    config: "wrangler.toml",
    source: "workers/router/index.ts",
    types: { out: "worker-configuration.d.ts", iface: "Env", runtime: true },
    dev: "main",
  },
  ...[1, 2, 3].map((v) => ({
    name: `echo-v${v}`,
    config: `examples/echo/wrangler.v${v}.toml`,
    source: "examples/echo/index.ts",
    build: "echo",
    types:
      v === 1 ? { out: "examples/echo/worker-configuration.d.ts", iface: "EchoEnv" } : undefined,
    dev: "main",
  })),
  ...[1, 2].map((v) => ({
    name: `payments-v${v}`,
    config: `examples/payments/wrangler.v${v}.toml`,
    source: "examples/payments/index.ts",
    build: "payments",
    types:
      v === 1
        ? { out: "examples/payments/worker-configuration.d.ts", iface: "PaymentsEnv" }
        : undefined,
    dev: "main",
  })),
  {
    name: "orders",
    config: "examples/orders/wrangler.toml",
    source: "examples/orders/index.ts",
    build: "orders",
    types: { out: "examples/orders/worker-configuration.d.ts", iface: "OrdersEnv" },
    dev: "main",
  },
  {
    name: "meshwork-identity",
    config: "workers/identity/wrangler.toml",
    source: "workers/identity/index.ts",
    build: "identity",
    types: { out: "workers/identity/worker-configuration.d.ts", iface: "IdentityEnv" },
    dev: { port: 8789, flag: "identity-port", what: "identity Worker" },
  },
  {
    name: "meshwork-policy",
    config: "workers/policy/wrangler.toml",
    source: "workers/policy/index.ts",
    build: "policy",
    types: { out: "workers/policy/worker-configuration.d.ts", iface: "PolicyEnv" },
    dev: { port: 8788, flag: "policy-port", what: "policy Worker" },
  },
];

/** The Worker named `name` in WORKERS (throws for an unknown one: a typo in a script). */
export function worker(name) {
  const found = WORKERS.find((w) => w.name === name);
  if (!found) throw new Error(`no Worker '${name}' in scripts/workers.mjs`);
  return found;
}

/** The `[vars]` of a Worker's wrangler config (for running its bundle outside wrangler). */
export function workerVars(config) {
  const vars = parseToml(readFileSync(join(ROOT, config), "utf8")).vars ?? {};
  return Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, String(v)]));
}

/**
 * The bindings a Worker's wrangler config declares, for running its bundle outside wrangler (the
 * tests' auxiliary Workers): `[vars]`, KV namespaces (binding → id), Durable Objects (binding →
 * class, and whether a migration makes it SQLite-backed) and service bindings (binding → the
 * Worker, entrypoint and props).
 */
export function workerBindings(config) {
  const toml = parseToml(readFileSync(join(ROOT, config), "utf8"));
  const sqlite = new Set((toml.migrations ?? []).flatMap((m) => m.new_sqlite_classes ?? []));
  return {
    vars: workerVars(config),
    kvNamespaces: Object.fromEntries((toml.kv_namespaces ?? []).map((kv) => [kv.binding, kv.id])),
    durableObjects: Object.fromEntries(
      (toml.durable_objects?.bindings ?? []).map((d) => [
        d.name,
        { className: d.class_name, sqlite: sqlite.has(d.class_name) },
      ]),
    ),
    services: Object.fromEntries(
      (toml.services ?? []).map((s) => [
        s.binding,
        { service: s.service, entrypoint: s.entrypoint, props: s.props },
      ]),
    ),
  };
}

/** Every Worker's wrangler config, the router's first. */
export const WORKER_CONFIGS = WORKERS.map((w) => w.config);

/** The identity Worker's config: `npm start` serves it in a process of its own (its port). */
export const IDENTITY_CONFIG = worker("meshwork-identity").config;
/** The policy Worker's config: `npm start` serves it in a process of its own (its port). */
export const POLICY_CONFIG = worker("meshwork-policy").config;

/**
 * The router's ADMIN_TOKEN under `npm start` (the bearer token of /.mesh/status). For local
 * development only: a deployed router gets its own with `wrangler secret put ADMIN_TOKEN`.
 */
export const DEV_ADMIN_TOKEN = "meshwork-dev-admin-token";

/** The environment wrangler runs with here: offline, no colour. */
export function wranglerEnv() {
  const env = { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" };
  // Some colour libraries take FORCE_COLOR=0 as "force colour"; NO_COLOR is the one switch.
  delete env.FORCE_COLOR;
  return env;
}

/**
 * Exits with a clear message unless this Node can run the project's scripts: they import the
 * TypeScript core directly, which needs Node ≥ 22.18 (type stripping). `npm start` and
 * `npm run …` use the project's pinned Node (a devDependency), whatever the system has.
 */
export function requireNode(command) {
  const [major, minor] = process.versions.node.split(".").map(Number);
  if (major < 22 || (major === 22 && minor < 18)) {
    console.error(
      `✗ Node ${process.versions.node} is too old for ${command}: it needs Node ≥ 22.18. ` +
        `Run it through npm (\`${command}\`), which puts the project's pinned Node first on the PATH.`,
    );
    process.exit(1);
  }
  if (!existsSync(WRANGLER)) {
    console.error("✗ the project's dependencies are not installed: run `npm install` first");
    process.exit(1);
  }
}

/** Where a path typed by the user points: npm runs scripts in the package root. */
export function userPath(path) {
  return resolve(process.env.INIT_CWD ?? process.cwd(), path);
}
