// Regenerates the `Env` types of every Worker with `wrangler types` (run after editing any
// wrangler config). With `--check`, fails when a generated file is out of date.
import { execFileSync } from "node:child_process";
import { WORKERS } from "./workers.mjs";

/** Each Worker's config, its generated types file and the name of its Env interface. */
const TYPED = WORKERS.filter((w) => w.types).map((w) => ({ config: w.config, ...w.types }));

const check = process.argv.includes("--check");
for (const w of TYPED) {
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
