// Regenerates the `Env` types of every Worker with `wrangler types` (run after editing any
// wrangler config). With `--check`, fails when a generated file is out of date.
import { execFileSync } from "node:child_process";

/** Each Worker's config, its generated types file and the name of its Env interface. */
export const WORKERS = [
  { config: "wrangler.toml", out: "worker-configuration.d.ts", iface: "Env", runtime: true },
  {
    config: "examples/echo/wrangler.v1.toml",
    out: "examples/echo/worker-configuration.d.ts",
    iface: "EchoEnv",
  },
  {
    config: "examples/payments/wrangler.v1.toml",
    out: "examples/payments/worker-configuration.d.ts",
    iface: "PaymentsEnv",
  },
  {
    config: "examples/orders/wrangler.toml",
    out: "examples/orders/worker-configuration.d.ts",
    iface: "OrdersEnv",
  },
  {
    config: "workers/identity/wrangler.toml",
    out: "workers/identity/worker-configuration.d.ts",
    iface: "IdentityEnv",
    runtime: false,
  },
];

const check = process.argv.includes("--check");
for (const w of WORKERS) {
  const args = ["wrangler", "types", w.out, "-c", w.config, "--env-interface", w.iface];
  // Vars are knobs users change per deployment: type them as strings, not as today's literals.
  args.push("--strict-vars=false");
  if (!w.runtime) args.push("--include-runtime=false");
  if (check) args.push("--check");
  execFileSync("npx", args, {
    stdio: check ? "inherit" : ["ignore", "ignore", "inherit"],
    env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
  });
}
