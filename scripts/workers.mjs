// The Workers of this repo and how wrangler is run here; shared by `npm start`, `npm test`
// and `npm run publish`. Plain JavaScript with no TypeScript imports, so it loads on any Node
// and can say clearly when the Node is too old for the rest.
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const WRANGLER = join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js");
/** The router's wrangler config: its service bindings are the destinations it can reach. */
export const ROUTER_CONFIG = join(ROOT, "wrangler.toml");
/** Local state (KV, later Durable Objects) of `npm start`, and where `publish --local` writes. */
export const DEFAULT_PERSIST_DIR = join(ROOT, ".mesh-local", "state");

/**
 * Every Worker's wrangler config. The router comes first: it is the Worker `wrangler dev`
 * serves when several configs run in one process.
 */
export const WORKER_CONFIGS = [
  "wrangler.toml",
  "examples/echo/wrangler.v1.toml",
  "examples/echo/wrangler.v2.toml",
  "examples/echo/wrangler.v3.toml",
  "examples/payments/wrangler.v1.toml",
  "examples/payments/wrangler.v2.toml",
  "examples/orders/wrangler.toml",
  "workers/identity/wrangler.toml",
];

/** The identity Worker's config: `npm start` serves it in a process of its own (its port). */
export const IDENTITY_CONFIG = "workers/identity/wrangler.toml";

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
