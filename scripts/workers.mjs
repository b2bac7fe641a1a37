// The Workers of this repo and how wrangler is run here; shared by `npm start`, `npm test`
// and `npm run publish`. Plain JavaScript with no TypeScript imports, so it loads on any Node.
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const WRANGLER = join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js");

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
];

/** The environment wrangler runs with here: offline, no colour. */
export function wranglerEnv() {
  return { ...process.env, WRANGLER_SEND_METRICS: "false", FORCE_COLOR: "0", NO_COLOR: "1" };
}
