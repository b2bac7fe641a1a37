// The config files `-f` names (files, or directories of *.yaml, *.yml and *.json), read with
// scripts/mesh-config.mjs and validated as one config with the router's own schemas and the
// bindings its wrangler.toml declares. Every resource remembers the file and line it came from,
// so an issue — found here or by the admin API, whose paths index the same list — names them.
//
// scripts/mesh-config.mjs is loaded on first use, not with meshctl: it brings the KV publishing
// code (and Miniflare) with it, a second of start-up that commands which read no files, or
// only call the admin API, should not pay.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { validateResources } from "../core/config/validate.ts";
import { userPath } from "../scripts/workers.mjs";
import { CliError, UsageError } from "./errors.mjs";
import { issueText } from "./output.mjs";

/** scripts/mesh-config.mjs, loaded once, when first needed. */
let meshConfig;
const loadMeshConfigModule = async () =>
  (meshConfig ??= await import("../scripts/mesh-config.mjs"));

/** Runs `read` and turns mesh-config's MeshConfigError into meshctl's CliError. */
async function fromMeshConfig(read) {
  const { MeshConfigError } = await loadMeshConfigModule();
  try {
    return read();
  } catch (error) {
    if (error instanceof MeshConfigError) throw new CliError(error.message, { lines: error.lines });
    throw error;
  }
}

const CONFIG_FILE = /\.(ya?ml|json)$/i;

/**
 * What one `-f` argument stands for: `{ path, directory, files }` — the file itself, or a
 * directory's config files, sorted by name.
 */
function configFiles(argument, display) {
  const path = userPath(argument);
  let stats;
  try {
    stats = statSync(path);
  } catch {
    throw new CliError(`no such file or directory: ${argument}`);
  }
  if (!stats.isDirectory()) return { path, directory: false, files: [path] };
  const files = readdirSync(path)
    .filter((name) => CONFIG_FILE.test(name))
    .sort()
    .map((name) => join(path, name))
    .filter((file) => statSync(file).isFile());
  if (files.length === 0) {
    throw new CliError(`${display(path)} holds no *.yaml, *.yml or *.json files`);
  }
  return { path, directory: true, files };
}

/** What the user named, in their words: a file, a directory (and how many files), or a count. */
function labelOf(named, files, display) {
  if (named.length > 1) return `${files.length} files`;
  const [{ path, directory }] = named;
  if (!directory) return display(path);
  return `${display(path)}/ (${files.length} ${files.length === 1 ? "file" : "files"})`;
}

/**
 * Reads every resource the `-f` arguments name. Returns `{ label, resources, origins }`:
 * `origins[i]` is `{ file, line }` of `resources[i]` (no line for JSON).
 */
export async function readSources(arguments_, command) {
  if (!arguments_ || arguments_.length === 0) {
    throw new UsageError("-f FILE|DIR is required", command);
  }
  const { display, readMeshConfig } = await loadMeshConfigModule();
  const named = arguments_.map((argument) => configFiles(argument, display));
  const files = named.flatMap((entry) => entry.files);
  const resources = [];
  const origins = [];
  for (const file of files) {
    const read = await fromMeshConfig(() => readMeshConfig(file));
    read.resources.forEach((resource, i) => {
      resources.push(resource);
      origins.push({ file: display(file), line: read.lines[i] });
    });
  }
  const label = labelOf(named, files, display);
  if (resources.length === 0) throw new CliError(`${label} holds no resources`);
  return { label, resources, origins };
}

/** "file:line" of resources[i], or undefined when the index is not one of the sources'. */
function origin(sources, index) {
  const where = sources.origins[index];
  if (!where) return undefined;
  return where.line === undefined ? where.file : `${where.file}:${where.line}`;
}

/**
 * An issue as the user reads it: `file:line: path: message`, the file and line those of the
 * resource the path starts in (the issue's own path is kept, as the admin API would give it).
 */
export function locateIssue(sources, issue) {
  const match = /^resources\[(\d+)\]/.exec(issue?.path ?? "");
  const where = match ? origin(sources, Number(match[1])) : undefined;
  return `${where ? `${where}: ` : ""}${issueText(issue)}`;
}

/** The router's service bindings (scripts/mesh-config.mjs `routerBindings`): `{ names, file }`. */
export async function readRouterBindings() {
  const { routerBindings } = await loadMeshConfigModule();
  return fromMeshConfig(routerBindings);
}

/**
 * Validates the sources offline, as one config, exactly as the router and the admin API would,
 * plus the router's bindings. Returns `{ ok, issues, warnings }` with issues already located.
 */
export async function validateSources(sources, { strict = false } = {}) {
  const result = validateResources(sources.resources, {
    strict,
    routerBindings: await readRouterBindings(),
  });
  const locate = (issue) => locateIssue(sources, issue);
  return {
    ok: result.ok,
    issues: result.ok ? [] : result.issues.map(locate),
    warnings: result.warnings.map(locate),
  };
}

/** Validates the sources and throws, listing every issue, when they are not a valid config. */
export async function requireValidSources(sources, { strict = false, then } = {}) {
  const validation = await validateSources(sources, { strict });
  if (!validation.ok) {
    const count = validation.issues.length;
    throw new CliError(
      `${sources.label} is not a valid mesh config (${count} ${count === 1 ? "issue" : "issues"})${then ? `; ${then}` : ""}`,
      { lines: validation.issues },
    );
  }
  return validation;
}
