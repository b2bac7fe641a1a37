// Shared by `npm start` and `npm run publish`: mesh config files — read (multi-document YAML or JSON), validated with the same core code the
// router loads config with, and written to the router's KV as a snapshot.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { buildSnapshot, INDEX_KEY } from "../core/config/snapshot.ts";
import { validateResources } from "../core/config/validate.ts";
import { ROOT, WRANGLER, wranglerEnv } from "./workers.mjs";

/** A config file that cannot be used; `lines` says why, one problem a line. */
export class MeshConfigError extends Error {
  constructor(summary, lines = []) {
    super(summary);
    this.lines = lines;
  }
}

/** Reads resources from YAML (multi-document) or JSON, with the line each resource starts on. */
export function readMeshConfig(file) {
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new MeshConfigError(`cannot read the mesh config ${file}: ${error.message}`);
  }
  if (file.endsWith(".json")) {
    let json;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new MeshConfigError(`${file} is not valid JSON`, [error.message]);
    }
    const resources = Array.isArray(json) ? json : json?.resources;
    if (!Array.isArray(resources)) {
      throw new MeshConfigError(`${file} must hold a list of resources or { "resources": [...] }`);
    }
    return { resources, lines: [] };
  }
  const documents = parseAllDocuments(text, { prettyErrors: true });
  const list = Array.isArray(documents) ? documents : [];
  const yamlErrors = list.flatMap((doc) => doc.errors);
  if (yamlErrors.length > 0) {
    throw new MeshConfigError(
      `${file} is not valid YAML`,
      yamlErrors.map((error) => error.message.split("\n")[0]),
    );
  }
  // Empty documents (a stray `---`, a comment-only document) are skipped.
  const resources = [];
  const lines = [];
  for (const doc of list) {
    if (doc.contents === null) continue;
    resources.push(doc.toJS());
    const offset = doc.contents.range?.[0] ?? 0;
    lines.push(text.slice(0, offset).split("\n").length);
  }
  return { resources, lines };
}

/** Reads and validates a config file; throws a MeshConfigError listing every issue. */
export function loadMeshConfig(file) {
  const { resources, lines } = readMeshConfig(file);
  if (resources.length === 0) throw new MeshConfigError(`${file} holds no resources`);
  const result = validateResources(resources);
  if (result.ok) return result.value;
  const problems = result.issues.map((issue) => `${issue.path}: ${issue.message}`);
  const mentioned = new Set(
    result.issues.flatMap((issue) =>
      [...issue.path.matchAll(/^resources\[(\d+)\]/g)].map((m) => Number(m[1])),
    ),
  );
  const where = [...mentioned].filter((i) => lines[i] !== undefined).sort((a, b) => a - b);
  if (where.length > 0) {
    problems.push(`(${where.map((i) => `resources[${i}] starts at line ${lines[i]}`).join(", ")})`);
  }
  throw new MeshConfigError(`${file} is not a valid mesh config`, problems);
}

/** wrangler's KV arguments for a target: `{ remote }` or `{ persistTo }` (local). */
function kvTargetArgs(target) {
  const args = ["--binding", "MESH_CONFIG", "-c", join(ROOT, "wrangler.toml")];
  if (target.remote) return [...args, "--remote"];
  args.push("--local");
  if (target.persistTo) args.push("--persist-to", target.persistTo);
  return args;
}

function wrangler(args) {
  return spawnSync(process.execPath, [WRANGLER, ...args], {
    cwd: ROOT,
    env: wranglerEnv(),
    encoding: "utf8",
  });
}

/** The version published at `target`, or 0 when nothing (readable) is. */
export function publishedVersion(target) {
  const result = wrangler(["kv", "key", "get", INDEX_KEY, ...kvTargetArgs(target), "--text"]);
  if (result.status !== 0) return 0;
  try {
    const version = JSON.parse(result.stdout).version;
    return Number.isInteger(version) ? version : 0;
  } catch {
    return 0;
  }
}

/**
 * Writes a validated config's snapshot to the router's KV: the entries first, the index in a
 * second write, so no reader finds an index whose entries are not there yet.
 * Returns the published index; throws with wrangler's output when a write fails.
 */
export function publishSnapshot(config, version, target) {
  const { index, writes } = buildSnapshot(config, version, new Date());
  const dir = mkdtempSync(join(tmpdir(), "meshwork-publish-"));
  try {
    const batches = [
      writes.filter((w) => w.key !== INDEX_KEY),
      writes.filter((w) => w.key === INDEX_KEY),
    ];
    for (const [i, batch] of batches.entries()) {
      const file = join(dir, `batch-${i}.json`);
      writeFileSync(file, JSON.stringify(batch));
      const result = wrangler(["kv", "bulk", "put", file, ...kvTargetArgs(target)]);
      if (result.status !== 0) {
        throw new MeshConfigError("writing the config to KV failed (wrangler kv bulk put)", [
          `${result.stdout ?? ""}${result.stderr ?? ""}${result.error ?? ""}`.trim(),
        ]);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return index;
}
