// Publishes mesh config to the router's KV namespace: reads YAML (multi-document) or JSON,
// validates it with the same core code the router loads it with, builds the snapshot (index +
// one entry per destination) and writes it with `wrangler kv bulk put`, entries before index.
//
//   node scripts/publish.mjs [--config examples/mesh.yaml] [--local [--persist-to DIR] | --remote]
//                            [--version N] [--dry-run]
//
// Until the policy Worker's admin API lands, this is how config reaches KV, locally and for real.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { buildSnapshot, INDEX_KEY } from "../core/config/snapshot.ts";
import { validateResources } from "../core/config/validate.ts";

const WRANGLER_ENV = { ...process.env, WRANGLER_SEND_METRICS: "false" };

/** Reads resources from a YAML (multi-document) or JSON file; throws with the file's errors. */
export function readResources(path) {
  const text = readFileSync(path, "utf8");
  if (path.endsWith(".json")) {
    const json = JSON.parse(text);
    return Array.isArray(json) ? json : json.resources;
  }
  const resources = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) {
      throw new Error(`${path}: ${doc.errors.map((e) => e.message).join("; ")}`);
    }
    const value = doc.toJS();
    if (value === null || value === undefined) continue;
    if (Array.isArray(value)) resources.push(...value);
    else if (Array.isArray(value.resources)) resources.push(...value.resources);
    else resources.push(value);
  }
  return resources;
}

/** Validates resources; on failure prints every issue (`path: message`) and returns undefined. */
export function validateOrReport(resources, source) {
  const result = validateResources(resources);
  if (result.ok) return result.value;
  console.error(`${source} is not valid mesh config:`);
  for (const issue of result.issues) console.error(`  ${issue.path}: ${issue.message}`);
  return undefined;
}

function wranglerKvArgs(target) {
  const args = ["--binding", "MESH_CONFIG", "-c", target.wranglerConfig ?? "wrangler.toml"];
  if (target.remote) args.push("--remote");
  else {
    args.push("--local");
    if (target.persistTo) args.push("--persist-to", target.persistTo);
  }
  return args;
}

/** The version currently published at `target`, or 0 when nothing is. */
export function currentVersion(target) {
  try {
    const text = execFileSync(
      "npx",
      ["wrangler", "kv", "key", "get", INDEX_KEY, ...wranglerKvArgs(target), "--text"],
      { env: WRANGLER_ENV, stdio: ["ignore", "pipe", "ignore"] },
    ).toString();
    const version = JSON.parse(text).version;
    return Number.isInteger(version) ? version : 0;
  } catch {
    return 0;
  }
}

/** Writes a validated config's snapshot to KV at `target`; returns the published index. */
export function publishSnapshot(config, version, target) {
  const { index, writes } = buildSnapshot(config, version, new Date());
  const dir = mkdtempSync(join(tmpdir(), "meshwork-publish-"));
  try {
    // Entries first, then the index in a second write, so no reader sees an index whose
    // entries are not there yet.
    const entries = writes.filter((w) => w.key !== INDEX_KEY);
    const indexWrites = writes.filter((w) => w.key === INDEX_KEY);
    for (const [name, batch] of [
      ["entries.json", entries],
      ["index.json", indexWrites],
    ]) {
      const file = join(dir, name);
      writeFileSync(file, JSON.stringify(batch));
      execFileSync("npx", ["wrangler", "kv", "bulk", "put", file, ...wranglerKvArgs(target)], {
        env: WRANGLER_ENV,
        stdio: ["ignore", "ignore", "inherit"],
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return index;
}

function parseArgs(argv) {
  const options = {
    config: "examples/mesh.yaml",
    remote: false,
    persistTo: undefined,
    version: undefined,
    dryRun: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const next = argv[++i];
      if (next === undefined) throw new Error(`${arg} needs a value`);
      return next;
    };
    if (arg === "--config") options.config = value();
    else if (arg === "--remote") options.remote = true;
    else if (arg === "--local") options.remote = false;
    else if (arg === "--persist-to") options.persistTo = value();
    else if (arg === "--dry-run") options.dryRun = true;
    else if (arg === "--version") {
      const version = Number(value());
      if (!Number.isInteger(version) || version < 0)
        throw new Error("--version must be a whole number ≥ 0");
      options.version = version;
    } else throw new Error(`unknown option ${arg} (see the header of scripts/publish.mjs)`);
  }
  return options;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  let options;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (error) {
    console.error(`publish: ${error.message}`);
    process.exit(2);
  }
  let resources;
  try {
    resources = readResources(options.config);
  } catch (error) {
    console.error(`publish: cannot read ${options.config}: ${error.message}`);
    process.exit(1);
  }
  const config = validateOrReport(resources, options.config);
  if (!config) process.exit(1);
  if (options.dryRun) {
    console.log(
      `${options.config}: valid (${config.services.length} Services, ${config.routes.length} HTTPRoutes); nothing written`,
    );
    process.exit(0);
  }
  const target = { remote: options.remote, persistTo: options.persistTo };
  const version = options.version ?? currentVersion(target) + 1;
  const index = publishSnapshot(config, version, target);
  console.log(
    `published version ${index.version} (${Object.keys(index.destinations).length} destinations) to ${options.remote ? "remote" : "local"} KV`,
  );
}
