/**
 * Publishing a validated config to the router's KV namespace, with the KV operations passed in,
 * so every writer (the command line through wrangler or local state today, the policy Worker
 * through its binding later) shares one implementation of the rules:
 *
 *  - versions only increase: a publish takes the next version after the one in KV, and an
 *    explicit version must be higher;
 *  - entries are immutable and content-addressed, written before the index that names them;
 *    where listing is consistent, an entry already in KV is not written again;
 *  - entries no longer referenced are collected after a grace period: the first publish that
 *    finds an entry unreferenced records when (in `mesh/gc`), and a publish after the grace
 *    period deletes it. Routers that still run the previous version keep finding its entries
 *    for at least that long (KV reaches every location within about a minute; routers check
 *    every few seconds).
 */
import { buildSnapshot, ENTRY_PREFIX, INDEX_KEY, type SnapshotWrite } from "./snapshot.ts";
import type { ConfigIssue, MeshConfig } from "./validate.ts";

/** KV key of the garbage-collection ledger: entry key → when it was first seen unreferenced. */
export const GC_LEDGER_KEY = "mesh/gc";
/** How long an unreferenced entry is kept before a publish deletes it. */
export const DEFAULT_GC_GRACE_MS = 60 * 60 * 1000;

/** The KV operations publishing needs. Implementations batch where their backend allows. */
export interface SnapshotStore {
  get(key: string): Promise<string | null>;
  /** Every key under `prefix`. */
  list(prefix: string): Promise<string[]>;
  /**
   * True when `list` reflects every write and delete at once (local state). Deployed KV lists
   * are eventually consistent, so a key listed may already be gone: there, every entry the new
   * index names is written, present or not.
   */
  readonly consistentList?: boolean;
  /** Writes all of `writes`; resolves once every one is stored. */
  putMany(writes: readonly SnapshotWrite[]): Promise<void>;
  deleteMany(keys: readonly string[]): Promise<void>;
}

export interface PublishOptions {
  /** Version to publish; must be higher than the one in KV. Default: the next one. */
  version?: number | undefined;
  now: Date;
  gcGraceMs?: number;
}

export type PublishResult =
  | {
      ok: true;
      version: number;
      previousVersion: number;
      destinations: number;
      entriesWritten: number;
      entriesDeleted: number;
      /** Unreferenced entries kept until their grace period ends. */
      entriesPending: number;
    }
  | { ok: false; issues: ConfigIssue[] };

/** The version in KV, or 0 when there is none or it cannot be read as an index. */
export async function publishedVersion(store: SnapshotStore): Promise<number> {
  const text = await store.get(INDEX_KEY);
  if (text === null) return 0;
  try {
    const version = (JSON.parse(text) as { version?: unknown }).version;
    return typeof version === "number" && Number.isInteger(version) && version >= 0 ? version : 0;
  } catch {
    return 0;
  }
}

function readLedger(text: string | null): Record<string, string> {
  if (text === null) return {};
  try {
    const json = JSON.parse(text) as unknown;
    if (!json || typeof json !== "object" || Array.isArray(json)) return {};
    return Object.fromEntries(
      Object.entries(json).filter(
        (pair): pair is [string, string] =>
          typeof pair[1] === "string" && !Number.isNaN(Date.parse(pair[1])),
      ),
    );
  } catch {
    return {};
  }
}

/** Publishes `config` (already validated) to `store`. */
export async function publishConfig(
  store: SnapshotStore,
  config: MeshConfig,
  options: PublishOptions,
): Promise<PublishResult> {
  const [previousVersion, ledgerText, existing] = await Promise.all([
    publishedVersion(store),
    store.get(GC_LEDGER_KEY),
    store.list(ENTRY_PREFIX),
  ]);
  const version = options.version ?? previousVersion + 1;
  if (version <= previousVersion) {
    return {
      ok: false,
      issues: [
        {
          path: "version",
          message: `KV already holds version ${previousVersion}; versions only increase, so publish ${previousVersion + 1} or later`,
        },
      ],
    };
  }
  const build = buildSnapshot(config, version, options.now);
  if (!build.ok) return build;

  const present = new Set(store.consistentList ? existing : []);
  const entries = build.writes.filter((w) => w.key !== INDEX_KEY);
  const index = build.writes.find((w) => w.key === INDEX_KEY)!;
  const newEntries = entries.filter((w) => !present.has(w.key));
  if (newEntries.length > 0) await store.putMany(newEntries);

  // Collect what the new index no longer references, once it has been unreferenced long enough.
  const referenced = new Set(entries.map((w) => w.key));
  const ledger = readLedger(ledgerText);
  const next: Record<string, string> = {};
  const expired: string[] = [];
  const grace = options.gcGraceMs ?? DEFAULT_GC_GRACE_MS;
  const now = options.now.getTime();
  for (const key of existing) {
    if (referenced.has(key)) continue;
    const since = ledger[key] ?? options.now.toISOString();
    if (now - Date.parse(since) >= grace) expired.push(key);
    else next[key] = since;
  }
  // The index last (with the ledger beside it): readers never see an index before its entries.
  await store.putMany([{ key: GC_LEDGER_KEY, value: JSON.stringify(next) }, index]);
  if (expired.length > 0) await store.deleteMany(expired);
  return {
    ok: true,
    version,
    previousVersion,
    destinations: entries.length,
    entriesWritten: newEntries.length,
    entriesDeleted: expired.length,
    entriesPending: Object.keys(next).length,
  };
}
