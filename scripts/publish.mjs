// `npm run publish`: publishes mesh config to the router's KV namespace. Reads YAML
// (multi-document) or JSON, validates it with the same core code the router loads it with,
// builds the snapshot (index + one entry per destination) and writes it, entries before index.
//
//   npm run publish -- [--config examples/mesh.yaml] [--local [--persist-to DIR] | --remote]
//                      [--version N] [--dry-run]
//
// Until the policy Worker's admin API lands, this is how config reaches KV, locally and for real.
import { parseArgs } from "node:util";
import {
  loadMeshConfig,
  MeshConfigError,
  publishedVersion,
  publishSnapshot,
} from "./mesh-config.mjs";

function options() {
  const { values } = parseArgs({
    options: {
      config: { type: "string", default: "examples/mesh.yaml" },
      local: { type: "boolean", default: false },
      remote: { type: "boolean", default: false },
      "persist-to": { type: "string" },
      version: { type: "string" },
      "dry-run": { type: "boolean", default: false },
    },
  });
  if (values.local && values.remote) throw new Error("choose --local or --remote, not both");
  let version;
  if (values.version !== undefined) {
    version = Number(values.version);
    if (!Number.isInteger(version) || version < 0)
      throw new Error("--version must be a whole number ≥ 0");
  }
  return { ...values, version };
}

let opts;
try {
  opts = options();
} catch (error) {
  console.error(`✗ ${error.message} (see the header of scripts/publish.mjs)`);
  process.exit(2);
}
try {
  const config = loadMeshConfig(opts.config);
  const summary = `${config.services.length} Services, ${config.routes.length} HTTPRoutes`;
  if (opts["dry-run"]) {
    console.log(`✓ ${opts.config} is valid (${summary}); nothing written`);
  } else {
    publish(config);
  }
} catch (error) {
  if (!(error instanceof MeshConfigError)) throw error;
  console.error(`✗ ${error.message}${error.lines.length > 0 ? ":" : ""}`);
  for (const line of error.lines) console.error(`  ${line}`);
  process.exitCode = 1;
}

function publish(config) {
  const target = { remote: opts.remote, persistTo: opts["persist-to"] };
  const index = publishSnapshot(config, opts.version ?? publishedVersion(target) + 1, target);
  console.log(
    `✓ published version ${index.version} (${Object.keys(index.destinations).length} destinations) to ${opts.remote ? "remote" : "local"} KV`,
  );
}
