// `npm test`: every check a change must pass, in the order that fails fastest.
// Generated types are current, typecheck, lint, format, every test tier, then a dry-run
// deploy of every Worker (so each one still builds for production).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WORKER_CONFIGS, wranglerEnv } from "./workers.mjs";

// No colour codes in the output (CI logs, files): NO_COLOR, and no FORCE_COLOR, which some
// libraries take as "force" whatever its value.
const env = wranglerEnv();

/** The browser test's Chromium: Debian's package (test/browser/dashboard.test.ts). */
const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_INSTALL = "apt-get update && apt-get install -y --no-install-recommends chromium";

/**
 * Makes sure the browser test has its Chromium. As root with apt-get (CI, a fresh Debian
 * machine) it installs Debian's package; elsewhere a missing one is said loudly, and the browser
 * test skips itself while everything else runs (in CI that is a failure). Nothing ever
 * downloads a browser of its own.
 */
function ensureChromium() {
  if (existsSync(CHROMIUM)) return;
  const canInstall =
    process.getuid?.() === 0 && spawnSync("sh", ["-c", "command -v apt-get"]).status === 0;
  if (canInstall) {
    console.log(`\n▶ Chromium for the browser test (${CHROMIUM} is missing): ${CHROMIUM_INSTALL}`);
    const result = spawnSync("sh", ["-c", CHROMIUM_INSTALL], {
      stdio: "inherit",
      env: { ...env, DEBIAN_FRONTEND: "noninteractive" },
    });
    if (result.status !== 0) console.error(`✗ installing chromium failed (${result.status})`);
  }
  if (!existsSync(CHROMIUM)) {
    console.warn(
      `\n⚠ ⚠ ⚠ No Chromium at ${CHROMIUM}: the dashboard's browser test will be SKIPPED.\n` +
        `  Install Debian's package and run npm test again:\n` +
        `    sudo ${CHROMIUM_INSTALL.replace("&& apt-get", "&& sudo apt-get")}\n`,
    );
    // CI runs as root on Debian: there the browser test must run, not skip.
    if (process.env.CI) {
      console.error("✗ CI could not install chromium, and the browser test must run there");
      process.exit(1);
    }
  }
}

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
ensureChromium();
const outRoot = mkdtempSync(join(tmpdir(), "meshwork-test-"));
const report = join(outRoot, "vitest.json");
step(
  "tests (core in Node, Workers in workerd, the router over real HTTP, npm start end to end, the dashboard in Chromium)",
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
