// `npm run publish`: validates a mesh config and publishes it to the router's KV namespace —
// the local state `npm start` runs on (a running `npm start` picks it up within seconds), or the
// deployed namespace. See USAGE below, or `npm run publish -- --help`.
import { parseArgs } from "node:util";
import { DEFAULT_PERSIST_DIR, requireNode, userPath } from "./workers.mjs";

const USAGE = `Usage: npm run publish -- [options]

Validates a mesh config (multi-document YAML or JSON) with the router's own schemas and the
bindings wrangler.toml declares, and publishes it to the router's KV namespace (MESH_CONFIG).

Options:
  --config FILE       the config to publish (default examples/mesh.yaml); relative paths are
                      taken from the current directory
  --local             publish to local state, where \`npm start\` runs (the default)
  --persist-to DIR    local state directory (default .mesh-local/state, as npm start)
  --remote            publish to the deployed namespace (wrangler's credentials)
  --version N         the version to publish; must be higher than the one in KV
                      (default: one more than it)
  --dry-run           validate only; write nothing
  --strict            also refuse backendRefs, mirrors, failovers and filters naming
                      missing resources (otherwise warnings)
  -h, --help          show this help

A running \`npm start\` applies a local publish within CONFIG_REFRESH_SECONDS (5 s).`;

function fail(message, code = 2) {
  console.error(`✗ ${message}\n\n${USAGE}`);
  process.exit(code);
}

function options() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        config: { type: "string", default: "examples/mesh.yaml" },
        local: { type: "boolean", default: false },
        remote: { type: "boolean", default: false },
        "persist-to": { type: "string" },
        version: { type: "string" },
        "dry-run": { type: "boolean", default: false },
        strict: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    fail(error.message);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  if (values.local && values.remote) fail("choose --local or --remote, not both");
  if (values.remote && values["persist-to"]) fail("--persist-to is for local state, not --remote");
  let version;
  if (values.version !== undefined) {
    version = Number(values.version);
    if (!/^\d+$/.test(values.version) || !Number.isSafeInteger(version) || version < 1) {
      fail(`--version must be a whole number ≥ 1, got '${values.version}'`);
    }
  }
  return {
    file: userPath(values.config),
    remote: values.remote,
    persistTo: values["persist-to"] ? userPath(values["persist-to"]) : DEFAULT_PERSIST_DIR,
    version,
    dryRun: values["dry-run"],
    strict: values.strict,
  };
}

const opts = options();
requireNode("npm run publish");
// The config code is TypeScript: imported only once the Node is known to strip types.
const { display, loadMeshConfig, MeshConfigError, publishMeshConfig } =
  await import("./mesh-config.mjs");

try {
  const { config, warnings } = loadMeshConfig(opts.file, { strict: opts.strict });
  for (const warning of warnings) console.warn(`⚠ ${warning}`);
  const summary =
    `${config.services.length} Services, ${config.routes.length} HTTPRoutes` +
    (config.policies.length > 0 ? `, ${config.policies.length} BackendPolicies` : "");
  if (opts.dryRun) {
    console.log(`✓ ${display(opts.file)} is valid (${summary}); nothing written`);
  } else {
    const target = opts.remote ? "remote KV" : `local KV in ${display(opts.persistTo)}`;
    const result = await publishMeshConfig(config, opts, { version: opts.version });
    const replaced =
      result.previousVersion > 0 ? `, replacing version ${result.previousVersion}` : "";
    console.log(
      `✓ published ${display(opts.file)} as version ${result.version}${replaced} to ${target}: ` +
        `${summary}, ${result.destinations} destinations, ${result.entriesWritten} entries written` +
        (result.entriesDeleted > 0
          ? `, ${result.entriesDeleted} unreferenced entries deleted`
          : "") +
        (result.entriesPending > 0
          ? `, ${result.entriesPending} unreferenced kept for the grace period`
          : ""),
    );
  }
} catch (error) {
  if (!(error instanceof MeshConfigError)) throw error;
  console.error(`✗ ${error.message}${error.lines.length > 0 ? ":" : ""}`);
  for (const line of error.lines) console.error(`  ${line}`);
  process.exitCode = 1;
}
