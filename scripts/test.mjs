// `npm test`: every check a change must pass, in the order that fails fastest.
// Generated types are current, typecheck, lint, format, every test tier, then a dry-run
// deploy of every Worker (so each one still builds for production).
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WORKER_CONFIGS, wranglerEnv } from "./workers.mjs";

// No colour codes in the output (CI logs, files): NO_COLOR, and no FORCE_COLOR, which some
// libraries take as "force" whatever its value.
const env = wranglerEnv();

function step(title, command, args) {
  console.log(`\n▶ ${title}`);
  const result = spawnSync(command, args, { stdio: "inherit", env });
  if (result.status !== 0) {
    console.error(`\n✗ ${title} failed`);
    process.exit(result.status ?? 1);
  }
}

step("generated Env types are current", "node", ["scripts/types.mjs", "--check"]);
step("typecheck (Workers code)", "npx", ["tsc", "--noEmit", "-p", "."]);
step("typecheck (Node-side code)", "npx", ["tsc", "--noEmit", "-p", "tsconfig.node.json"]);
step("lint", "npx", ["eslint", "."]);
step("format", "npx", ["prettier", "--check", "."]);
const outRoot = mkdtempSync(join(tmpdir(), "meshwork-test-"));
const report = join(outRoot, "vitest.json");
step(
  "tests (core in Node, Workers in workerd, the router over real HTTP, npm start end to end)",
  "npx",
  ["vitest", "run", "--reporter=default", "--reporter=json", `--outputFile.json=${report}`],
);
const { numPassedTests, numFailedTests, numTotalTests } = JSON.parse(readFileSync(report, "utf8"));
if (numTotalTests === 0) {
  console.error("✗ vitest ran no tests");
  process.exit(1);
}

try {
  for (const [i, config] of WORKER_CONFIGS.entries()) {
    step(`wrangler deploy --dry-run -c ${config}`, "npx", [
      "wrangler",
      "deploy",
      "--dry-run",
      "--outdir",
      join(outRoot, String(i)),
      "-c",
      config,
    ]);
  }
} finally {
  rmSync(outRoot, { recursive: true, force: true });
}
console.log("\n✓ all checks passed");
// The closing line CI reads: the test count of this run.
console.log(`tests: ${numPassedTests} passed, ${numFailedTests} failed`);
