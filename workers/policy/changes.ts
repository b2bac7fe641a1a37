/**
 * What a write does to the mesh's config, as pure functions over resource lists: the config a
 * write proposes (what is validated, whole), the diff between two configs, and the summary a
 * version is stored with. No storage and no Workers types, so every rule here is tested on its
 * own; the PolicyStore Durable Object only loads, calls these and persists.
 *
 * A resource is identified by `Kind/name` (the mesh has one namespace, as validation has it) and
 * compared by its canonical JSON (keys sorted at every level), so applying the same file twice,
 * or the same resource as YAML and then as JSON, changes nothing.
 */
import { RESOURCE_KINDS } from "../../core/config/resources.ts";
import type { ConfigIssue } from "../../core/config/validate.ts";

/** What a write changed: resource keys (`Kind/name`), each list sorted. */
export interface ConfigDiff {
  added: string[];
  changed: string[];
  removed: string[];
}

/** A change to the config, as the store receives it (rollback brings the old version's list). */
export type ConfigChange =
  | { op: "apply"; resources: readonly unknown[]; prune: boolean }
  | { op: "put"; kind: string; name: string; resource: unknown }
  | { op: "delete"; kind: string; name: string }
  | { op: "rollback"; version: number; resources: readonly unknown[] };

/** The whole config a change proposes, in the order it is validated in. */
export interface ProposedConfig {
  resources: unknown[];
  /**
   * What each resource is called in issues: `resources[i]` for the i-th of an apply's body (its
   * path in the request), `Kind/name` for a resource already in the config or named by the path.
   */
  labels: string[];
}

/** `Kind/name` of a resource, or undefined when it has no string kind and metadata.name. */
export function resourceKey(resource: unknown): string | undefined {
  if (resource === null || typeof resource !== "object") return undefined;
  const { kind, metadata } = resource as { kind?: unknown; metadata?: unknown };
  const name =
    metadata !== null && typeof metadata === "object"
      ? (metadata as { name?: unknown }).name
      : undefined;
  return typeof kind === "string" && typeof name === "string" ? `${kind}/${name}` : undefined;
}

/**
 * The config `change` makes of `current` (resources with a key, as the store keeps them). Only
 * the list: whether it is valid is for validation to say, on all of it.
 */
export function proposeConfig(current: readonly unknown[], change: ConfigChange): ProposedConfig {
  const keyed = (list: readonly unknown[], except: ReadonlySet<string>) =>
    list.filter((r) => !except.has(resourceKey(r) ?? ""));
  const labelled = (list: readonly unknown[]) => list.map((r) => resourceKey(r) ?? "resource");
  switch (change.op) {
    case "apply": {
      // The body first, at its own indexes, so an issue's path is its path in the request.
      const body = [...change.resources];
      const kept = change.prune
        ? []
        : keyed(current, new Set(body.map((r) => resourceKey(r) ?? "")));
      return {
        resources: [...body, ...kept],
        labels: [...body.map((_, i) => `resources[${i}]`), ...labelled(kept)],
      };
    }
    case "put": {
      const key = `${change.kind}/${change.name}`;
      const kept = keyed(current, new Set([key]));
      return { resources: [change.resource, ...kept], labels: [key, ...labelled(kept)] };
    }
    case "delete": {
      const kept = keyed(current, new Set([`${change.kind}/${change.name}`]));
      return { resources: kept, labels: labelled(kept) };
    }
    case "rollback":
      return { resources: [...change.resources], labels: labelled(change.resources) };
  }
}

const INDEXED = /^resources\[(\d+)\]/;

/** Issues of a proposed config with their paths named as the writer knows them (`labels`). */
export function relabelIssues(issues: readonly ConfigIssue[], labels: readonly string[]) {
  return issues.map((issue) => {
    const match = INDEXED.exec(issue.path);
    const label = match ? labels[Number(match[1])] : undefined;
    return label === undefined
      ? issue
      : { path: label + issue.path.slice(match![0].length), message: issue.message };
  });
}

/** JSON with every object's keys sorted: equal values have equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.keys(value)
      .sort()
      .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
      .map(
        (key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`,
      );
    return `{${entries.join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

const KIND_ORDER = new Map<string, number>(RESOURCE_KINDS.map((kind, i) => [kind, i]));

/** Orders keys as the store lists resources: by kind (the README's order), then by name. */
export function compareKeys(a: string, b: string): number {
  const kindA = a.slice(0, a.indexOf("/"));
  const kindB = b.slice(0, b.indexOf("/"));
  const byKind = (KIND_ORDER.get(kindA) ?? Infinity) - (KIND_ORDER.get(kindB) ?? Infinity);
  if (byKind !== 0 && !Number.isNaN(byKind)) return byKind;
  return a === b ? 0 : a < b ? -1 : 1;
}

/** What changed from `before` to `after` (each a map of key → canonical JSON). */
export function diffConfigs(
  before: ReadonlyMap<string, string>,
  after: ReadonlyMap<string, string>,
): ConfigDiff {
  const added: string[] = [];
  const changed: string[] = [];
  const removed: string[] = [];
  for (const [key, json] of after) {
    const old = before.get(key);
    if (old === undefined) added.push(key);
    else if (old !== json) changed.push(key);
  }
  for (const key of before.keys()) if (!after.has(key)) removed.push(key);
  return {
    added: added.sort(compareKeys),
    changed: changed.sort(compareKeys),
    removed: removed.sort(compareKeys),
  };
}

/** True when a diff changes nothing. */
export function isEmptyDiff(diff: ConfigDiff): boolean {
  return diff.added.length + diff.changed.length + diff.removed.length === 0;
}

/** The one-line summary a version is stored with: what was done and how much it changed. */
export function summarize(change: ConfigChange, diff: ConfigDiff): string {
  const what =
    change.op === "apply"
      ? change.prune
        ? "apply with prune"
        : "apply"
      : change.op === "rollback"
        ? `rollback to version ${change.version}`
        : `${change.op} ${change.kind}/${change.name}`;
  const counts = [
    diff.added.length > 0 ? `${diff.added.length} added` : "",
    diff.changed.length > 0 ? `${diff.changed.length} changed` : "",
    diff.removed.length > 0 ? `${diff.removed.length} removed` : "",
  ].filter((part) => part !== "");
  return counts.length === 0 ? `${what}: no change` : `${what}: ${counts.join(", ")}`;
}
