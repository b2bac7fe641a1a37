// Shared by `npm start` and `npm run publish`: mesh config files — read (multi-document YAML or
// JSON), validated with the same core code the router loads config with (plus the router's
// bindings, read from wrangler.toml), and published to the router's KV namespace.
import { readFileSync, statSync } from "node:fs";
import { relative } from "node:path";
import { loadAll } from "js-yaml";
import { parse as parseToml } from "smol-toml";
import { MAX_CONFIG_BYTES } from "../core/config/limits.ts";
import { publishConfig } from "../core/config/publish.ts";
import { validateResources } from "../core/config/validate.ts";
import { openLocalStore, openRemoteStore } from "./kv-store.mjs";
import { ROOT, ROUTER_CONFIG } from "./workers.mjs";

/** A config (or a publish) that cannot be used; `lines` says why, one problem a line. */
export class MeshConfigError extends Error {
  constructor(summary, lines = []) {
    super(summary);
    this.lines = lines;
  }
}

/** A path as the user reads it: relative to the repository when inside it. */
export const display = (path) => (path.startsWith(ROOT) ? relative(ROOT, path) || "." : path);

const DOCUMENT_MARKER = /^(---|\.\.\.)(?=[ \t]|$)/;

/**
 * Splits multi-document YAML at its document markers, in one pass. A line starting with `---`
 * or `...` cannot occur inside a YAML scalar, so this split is exact; it lets each document be
 * parsed on its own and keeps the line each one starts on for messages.
 */
function yamlDocuments(text) {
  const documents = [];
  let current = { line: 1, lines: [] };
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const marker = DOCUMENT_MARKER.exec(line);
    if (!marker) {
      current.lines.push(line);
      continue;
    }
    documents.push(current);
    // What follows `---` on its line belongs to the new document.
    current = { line: i + 1, lines: [marker[1] === "---" ? line.slice(3) : ""] };
  }
  documents.push(current);
  return documents;
}

/** Reads resources from YAML (multi-document) or JSON, with the line each resource starts on. */
export function readMeshConfig(file) {
  let text;
  try {
    const size = statSync(file).size;
    if (size > MAX_CONFIG_BYTES) {
      throw new MeshConfigError(
        `${display(file)} is ${size} bytes; a mesh config may be at most ${MAX_CONFIG_BYTES}`,
      );
    }
    text = readFileSync(file, "utf8");
  } catch (error) {
    if (error instanceof MeshConfigError) throw error;
    throw new MeshConfigError(`cannot read the mesh config ${display(file)}: ${error.message}`);
  }
  if (file.endsWith(".json")) {
    let json;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new MeshConfigError(`${display(file)} is not valid JSON`, [error.message]);
    }
    const resources = Array.isArray(json) ? json : json?.resources;
    if (!Array.isArray(resources)) {
      throw new MeshConfigError(
        `${display(file)} must hold a list of resources or { "resources": [...] }`,
      );
    }
    return { resources, lines: [] };
  }
  const resources = [];
  const lines = [];
  const errors = [];
  for (const document of yamlDocuments(text)) {
    let values;
    try {
      values = loadAll(document.lines.join("\n"));
    } catch (error) {
      const line = document.line + (error.mark?.line ?? 0);
      errors.push(`line ${line}: ${error.reason ?? error.message.split("\n")[0]}`);
      continue;
    }
    // Empty documents (a stray `---`, a comment-only document) are skipped.
    const first = document.lines.findIndex((line) => !/^\s*(#|$)/.test(line));
    for (const value of values) {
      if (value === null || value === undefined) continue;
      resources.push(value);
      lines.push(document.line + Math.max(first, 0));
    }
  }
  if (errors.length > 0) throw new MeshConfigError(`${display(file)} is not valid YAML`, errors);
  return { resources, lines };
}

/**
 * The service bindings the router's wrangler.toml declares for destinations: all of them but
 * IDENTITY and POLICY, the router's own ways to the identity and policy Workers (no mesh
 * traffic goes there).
 */
export function routerBindings() {
  let config;
  try {
    config = parseToml(readFileSync(ROUTER_CONFIG, "utf8"));
  } catch (error) {
    throw new MeshConfigError(`cannot read ${display(ROUTER_CONFIG)}: ${error.message}`);
  }
  const services = Array.isArray(config.services) ? config.services : [];
  return {
    names: new Set(
      services
        .map((s) => s?.binding)
        .filter((b) => typeof b === "string" && b !== "IDENTITY" && b !== "POLICY"),
    ),
    file: display(ROUTER_CONFIG),
  };
}

/** The id of the router's MESH_CONFIG KV namespace, from wrangler.toml. */
export function configNamespaceId() {
  const config = parseToml(readFileSync(ROUTER_CONFIG, "utf8"));
  const namespace = (config.kv_namespaces ?? []).find((n) => n?.binding === "MESH_CONFIG");
  if (!namespace?.id) {
    throw new MeshConfigError(`${display(ROUTER_CONFIG)} declares no MESH_CONFIG KV namespace`);
  }
  return namespace.id;
}

/**
 * Reads and validates a config file. Returns `{ config, warnings }`; throws a MeshConfigError
 * listing every issue (with the line each offending YAML document starts on).
 */
export function loadMeshConfig(file, { strict = false } = {}) {
  const { resources, lines } = readMeshConfig(file);
  if (resources.length === 0) throw new MeshConfigError(`${display(file)} holds no resources`);
  const result = validateResources(resources, { strict, routerBindings: routerBindings() });
  const located = (issues) => {
    const out = issues.map((issue) => `${issue.path}: ${issue.message}`);
    const mentioned = new Set(
      issues.flatMap((issue) =>
        [...issue.path.matchAll(/^resources\[(\d+)\]/g)].map((m) => Number(m[1])),
      ),
    );
    const where = [...mentioned].filter((i) => lines[i] !== undefined).sort((a, b) => a - b);
    if (where.length > 0) {
      out.push(`(${where.map((i) => `resources[${i}] starts at line ${lines[i]}`).join(", ")})`);
    }
    return out;
  };
  if (!result.ok) {
    throw new MeshConfigError(
      `${display(file)} is not a valid mesh config`,
      located(result.issues),
    );
  }
  return { config: result.value, warnings: located(result.warnings) };
}

/** Opens the router's KV: `{ remote: true }`, or local state under `persistTo`. */
export async function openStore(target) {
  return target.remote ? openRemoteStore() : openLocalStore(target.persistTo, configNamespaceId());
}

/**
 * Publishes a validated config to the router's KV. Returns publishConfig's result; throws a
 * MeshConfigError when it is refused (an older version, an entry too large) or KV fails.
 */
export async function publishMeshConfig(config, target, { version } = {}) {
  const store = await openStore(target);
  try {
    const result = await publishConfig(store, config, { version, now: new Date() });
    if (!result.ok) {
      throw new MeshConfigError(
        "the config cannot be published",
        result.issues.map((issue) => `${issue.path}: ${issue.message}`),
      );
    }
    return result;
  } catch (error) {
    if (error instanceof MeshConfigError) throw error;
    throw new MeshConfigError(`writing the config to ${store.where} KV failed`, [error.message]);
  } finally {
    await store.close();
  }
}
