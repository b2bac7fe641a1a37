/**
 * PolicyStore: the mesh config's single writer, one Durable Object (named "mesh") of the policy
 * Worker, in SQLite (docs/control-plane.md).
 *
 *  - Versions. Every change — apply, put, delete, rollback — is validated whole (the router's own
 *    validation, cross-resource checks included) and becomes a new version, stored whole with its
 *    author, time, summary and diff. Versions only increase and are never renumbered; a write
 *    that changes nothing makes none. Resources are stored once per distinct content (by SHA-256
 *    of their canonical JSON) and a version is the list of its resources' hashes, so keeping every
 *    version of a large config costs what its changes cost. Long lists are kept in chunks, as
 *    SQLite here takes at most 2 MB in one row.
 *  - Serial writes. Writes run one at a time on a promise chain: a write awaits KV (to number its
 *    version above whatever KV holds), and the Durable Object's input gate opens while it does,
 *    so without the chain a second write could read the same version and both would commit.
 *  - Publishing. A commit sets the alarm; the alarm publishes the latest version to the router's
 *    KV with core/config/publish.ts, at most once a second (versions committed in between are
 *    published together), retrying a failure with back-off. KV's version is the store's. A
 *    publish counts once `mesh/index` is written; what fails after it is cleanup, reported.
 *  - Import. A store with no version first takes over a config KV holds that it did not write,
 *    as a version numbered as KV's, rebuilt from the snapshot.
 *  - Audit. Who did what, refused writes included; never a secret.
 *  - Router reports: which version each router isolate has applied.
 *
 * The Worker is the edge: it authenticates, parses bodies and checks their shape; the methods here
 * trust their arguments' types.
 */
import { DurableObject } from "cloudflare:workers";
import type {
  RevocationResource,
  WorkloadCredentialResource,
} from "../core/config/identity-schema.ts";
import type { AdminRole } from "../core/identity/names.ts";
import { publishConfig, type SnapshotStore } from "../core/config/publish.ts";
import {
  buildSnapshot,
  INDEX_KEY,
  parseEntry,
  parseIdentityEntry,
  parseIndex,
  type Revocations,
  type SnapshotIndex,
} from "../core/config/snapshot.ts";
import { validateResources, type ConfigIssue } from "../core/config/validate.ts";
import { withDeadline } from "../core/timeout.ts";
import {
  canonicalJson,
  compareKeys,
  diffConfigs,
  isEmptyDiff,
  proposeConfig,
  relabelIssues,
  resourceKey,
  summarize,
  type ConfigChange,
  type ConfigDiff,
} from "../workers/policy/changes.ts";
import { driftOf, isPropagating, PROPAGATION_MS, type Drift } from "../workers/policy/drift.ts";
import { kvSnapshotStore } from "../workers/policy/kv-snapshot-store.ts";
import { publishAt, retryDelayMs } from "../workers/policy/publish-schedule.ts";
import type { RouterReport } from "../workers/policy/router-report.ts";

/** The name of the one PolicyStore (`env.POLICY_STORE.getByName(POLICY_STORE_NAME)`). */
export const POLICY_STORE_NAME = "mesh";

/** The author of versions the store makes itself (a renumbering above KV's version). */
export const STORE_AUTHOR = "policy-store";
/** The author of the version made from a config found in KV (published outside this store). */
export const IMPORT_AUTHOR = "import from KV";
/** Versions are whole numbers below this (13 digits at most); KV holding another is drift. */
export const VERSION_LIMIT = 1e12;
/** Indexes this store wrote, kept to recognise its own (at least this many, and the recent ones). */
const PUBLISHED_INDEXES_KEPT = 100;
/** KV reads at once while importing a config. */
const IMPORT_CONCURRENCY = 16;
/** Router isolates not heard from for this long are dropped from status. */
export const ROUTER_REPORT_TTL_MS = 10 * 60_000;
/** Most router isolates kept; the longest silent go first. */
export const MAX_ROUTER_REPORTS = 10_000;
/** Audit entries kept; the oldest go first. */
export const MAX_AUDIT_ENTRIES = 50_000;
/** How long a write waits for KV's version before it goes with the highest seen. */
const KV_READ_TIMEOUT_MS = 5_000;
/** Characters per stored chunk of a long list (at most 3 bytes each in UTF-8: under 2 MB). */
const CHUNK_CHARS = 256 * 1024;

/** The bindings the store uses. */
export interface PolicyStoreEnv {
  MESH_CONFIG: KVNamespace;
}

/** Who asks for a write, and how. */
interface WriteContext {
  /** Who: `token`, a SPIFFE ID, either with the client's `(name)`. Recorded, never a secret. */
  author: string;
  /** What, for the audit log (`POST /v1/apply`). */
  action: string;
  /** The version the writer expects to change; another one refuses the write. */
  ifMatch?: number | undefined;
  /** Validate and diff, change nothing. */
  dryRun?: boolean | undefined;
}

/** A write to the config. */
export type WriteRequest = WriteContext &
  (
    | { op: "apply"; resources: unknown[]; prune?: boolean | undefined }
    | { op: "put"; kind: string; name: string; resource: unknown }
    | { op: "delete"; kind: string; name: string }
    | { op: "rollback"; version: number }
  );

/** What a write did: a version (new, or the current one when nothing changed), or why not. */
export type WriteResult =
  | {
      ok: true;
      version: number;
      /** False for a dry run and for a write that changed nothing. */
      committed: boolean;
      warnings: ConfigIssue[];
      diff: ConfigDiff;
    }
  | {
      ok: false;
      code: "invalid_config" | "not_found" | "version_conflict";
      message: string;
      /** The current version. */
      version: number;
      issues?: ConfigIssue[];
    };

/** One version as history lists it. */
export interface VersionSummary extends ConfigDiff {
  version: number;
  /** ISO 8601. */
  at: string;
  author: string;
  summary: string;
}

/** One version, whole. */
export interface VersionRecord extends VersionSummary {
  resources: unknown[];
}

export interface AuditEntry {
  id: number;
  at: string;
  actor: string;
  action: string;
  /** `committed`, `unchanged`, or the code of the refusal (`invalid_config`, `forbidden`, …). */
  outcome: string;
  /** The version it made, or the current one when it made none. */
  version: number | null;
  detail: string;
}

/** A refusal the Worker decided at the edge (401, 403, a body it could not read). */
export interface RefusalEntry {
  actor: string;
  action: string;
  outcome: string;
  detail: string;
}

/** Control-plane roles a WorkloadCredential grants the SVIDs of `service` (it is not disabled). */
export interface RoleGrant {
  service: string;
  roles: AdminRole[];
  /** After this it grants nothing (ISO 8601). */
  expires?: string;
}

/** What the current config says about admin SVIDs: what it revokes and the roles it grants. */
export interface AdminIdentity {
  version: number;
  revocations: Revocations;
  grants: RoleGrant[];
}

/** A router isolate's report, as status shows it. */
export interface RouterView extends RouterReport {
  reportedAt: string;
}

export interface StoreStatus {
  /**
   * The store's clock when it answered (ISO 8601): ages (of a publish, of a router's applied
   * version) are computed against it, so a client with a skewed clock still reads them right.
   */
  now: string;
  /** The current version (0: none yet). */
  version: number;
  published: {
    /** The version last published to KV, and when. */
    version: number | null;
    at: string | null;
    /** True while a committed version waits to be published. */
    pending: boolean;
    /** When the alarm will publish (or retry). */
    nextAttemptAt: string | null;
    /** The last publish's failure, until one succeeds. */
    lastError: { message: string; at: string; failures: number } | null;
    /**
     * What failed after the last publish's index was written (the `mesh/gc` ledger, deleting old
     * entries): the version is published all the same, and the next publish tries again.
     */
    cleanupError: { message: string; at: string } | null;
  };
  kv: { version: number | null; error: string | null };
  drift: Drift | null;
  routers: {
    /** Isolates reporting; how many have the published version, an older one, none, an error. */
    total: number;
    current: number;
    behind: number;
    withError: number;
    isolates: RouterView[];
  };
}

/** A resource as the store holds it in memory: its content hash and canonical JSON. */
interface HeldResource {
  hash: string;
  json: string;
}

/** The current config: its version and resources by key, in the store's order. */
interface HeldConfig {
  version: number;
  resources: Map<string, HeldResource>;
}

interface PublishState extends Record<string, SqlStorageValue> {
  version: number | null;
  index_hash: string | null;
  at: number | null;
  attempt_at: number | null;
  failures: number;
  last_error: string | null;
  last_error_at: number | null;
  kv_version: number | null;
  cleanup_error: string | null;
  cleanup_error_at: number | null;
}

/** What KV's `mesh/index` holds. */
interface KvIndexRead {
  text: string | null;
  /** SHA-256 (hex) of the text. */
  hash: string | null;
  /** The index as the router reads it (parseIndex), or null. */
  index: SnapshotIndex | null;
  /** Its version (the router's reading, else the text's `version`), or null. */
  version: number | null;
}

/** True for a version this store may number: a whole number from 0 below VERSION_LIMIT. */
export function isUsableVersion(version: number): boolean {
  return Number.isSafeInteger(version) && version >= 0 && version < VERSION_LIMIT;
}

interface VersionRow extends Record<string, SqlStorageValue> {
  version: number;
  at: number;
  author: string;
  summary: string;
}

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max)}…` : text);

function issuesDetail(issues: readonly ConfigIssue[]): string {
  const first = issues[0];
  return first === undefined
    ? ""
    : `${issues.length} issue${issues.length === 1 ? "" : "s"}; first: ${first.path}: ${first.message}`;
}

export class PolicyStore extends DurableObject<PolicyStoreEnv> {
  /**
   * The object's clock, in ms since the epoch. Tests replace it (through `runInDurableObject`) to
   * move time without waiting; an instance field, not a method, so RPC cannot reach it.
   */
  now: () => number = () => Date.now();
  /** The tail of the write chain: each write starts when the one before has finished. */
  #writes: Promise<unknown> = Promise.resolve();
  #held: HeldConfig | undefined;
  /** The held config's revocations and role grants, computed once per version. */
  #adminIdentity: AdminIdentity | undefined;
  #auditInserts = 0;
  #reportInserts = 0;

  constructor(ctx: DurableObjectState, env: PolicyStoreEnv) {
    super(ctx, env);
    const sql = ctx.storage.sql;
    sql.exec(`CREATE TABLE IF NOT EXISTS resources (
      hash TEXT PRIMARY KEY,
      json TEXT NOT NULL
    )`);
    sql.exec(`CREATE TABLE IF NOT EXISTS versions (
      version INTEGER PRIMARY KEY,
      at INTEGER NOT NULL,
      author TEXT NOT NULL,
      summary TEXT NOT NULL
    )`);
    // A version's long lists, in chunks: `manifest` (its resources' hashes, JSON) and `diff`.
    sql.exec(`CREATE TABLE IF NOT EXISTS version_parts (
      version INTEGER NOT NULL,
      part TEXT NOT NULL,
      seq INTEGER NOT NULL,
      text TEXT NOT NULL,
      PRIMARY KEY (version, part, seq)
    )`);
    sql.exec(`CREATE TABLE IF NOT EXISTS audit (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      at INTEGER NOT NULL,
      actor TEXT NOT NULL,
      action TEXT NOT NULL,
      outcome TEXT NOT NULL,
      version INTEGER,
      detail TEXT NOT NULL
    )`);
    sql.exec(`CREATE TABLE IF NOT EXISTS publish_state (
      id INTEGER PRIMARY KEY CHECK (id = 1),
      version INTEGER,
      index_hash TEXT,
      at INTEGER,
      attempt_at INTEGER,
      failures INTEGER NOT NULL DEFAULT 0,
      last_error TEXT,
      last_error_at INTEGER,
      kv_version INTEGER
    )`);
    sql.exec("INSERT OR IGNORE INTO publish_state (id) VALUES (1)");
    for (const column of ["cleanup_error TEXT", "cleanup_error_at INTEGER"]) {
      // Added later: a store created before has the table without them.
      try {
        sql.exec(`ALTER TABLE publish_state ADD COLUMN ${column}`);
      } catch {
        // Already there.
      }
    }
    // Every index this store wrote that KV may still show: the current one (replaced_at NULL),
    // and those its later publishes replaced (kept a while, to tell propagation from drift).
    sql.exec(`CREATE TABLE IF NOT EXISTS published_indexes (
      hash TEXT PRIMARY KEY,
      version INTEGER NOT NULL,
      at INTEGER NOT NULL,
      replaced_at INTEGER
    )`);
    sql.exec(`CREATE TABLE IF NOT EXISTS routers (
      isolate TEXT PRIMARY KEY,
      colo TEXT,
      version INTEGER,
      applied_at TEXT,
      error TEXT,
      reported_at INTEGER NOT NULL
    )`);
  }

  // ---- Reading ----

  /**
   * The current version and its resources (version 0 and none before the first write). A store
   * with no version yet first imports the config KV holds, if any (a failed import is left to
   * the first write to report).
   */
  async current(): Promise<{ version: number; resources: unknown[] }> {
    await this.#importBeforeFirstRead();
    const held = this.#current();
    return {
      version: held.version,
      resources: [...held.resources.values()].map((r) => JSON.parse(r.json) as unknown),
    };
  }

  /** One resource of the current version, or null, with the current version. */
  async resource(kind: string, name: string): Promise<{ version: number; resource: unknown }> {
    await this.#importBeforeFirstRead();
    const held = this.#current();
    const found = held.resources.get(`${kind}/${name}`);
    return {
      version: held.version,
      resource: found === undefined ? null : (JSON.parse(found.json) as unknown),
    };
  }

  /** Versions newest first: at most `limit`, older than `before` when given. */
  history(options: { limit: number; before?: number | undefined }): VersionSummary[] {
    const rows = this.ctx.storage.sql
      .exec<VersionRow>(
        "SELECT version, at, author, summary FROM versions WHERE version < ? ORDER BY version DESC LIMIT ?",
        options.before ?? Number.MAX_SAFE_INTEGER,
        Math.max(1, Math.floor(options.limit)),
      )
      .toArray();
    return rows.map((row) => this.#summary(row));
  }

  /** Version `n`, whole, or null when there is none. */
  version(n: number): VersionRecord | null {
    const row = this.ctx.storage.sql
      .exec<VersionRow>("SELECT version, at, author, summary FROM versions WHERE version = ?", n)
      .toArray()[0];
    if (row === undefined) return null;
    return {
      ...this.#summary(row),
      resources: this.#resourcesOf(n).map((r) => JSON.parse(r.json) as unknown),
    };
  }

  /** The audit log, newest first: at most `limit` entries, older than id `before` when given. */
  audit(options: { limit: number; before?: number | undefined }): AuditEntry[] {
    return this.ctx.storage.sql
      .exec<{
        id: number;
        at: number;
        actor: string;
        action: string;
        outcome: string;
        version: number | null;
        detail: string;
      }>(
        "SELECT id, at, actor, action, outcome, version, detail FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?",
        options.before ?? Number.MAX_SAFE_INTEGER,
        Math.max(1, Math.floor(options.limit)),
      )
      .toArray()
      .map((row) => ({ ...row, at: new Date(row.at).toISOString() }));
  }

  /**
   * What the current config revokes (in the snapshot index's compact form) and which roles its
   * WorkloadCredentials grant: admin SVIDs are checked against it before the KV copy the
   * identity Worker and routers read has caught up, so a revocation, or a role taken away, counts
   * as soon as it is committed.
   */
  adminIdentity(): AdminIdentity {
    const held = this.#current();
    if (this.#adminIdentity?.version === held.version) return this.#adminIdentity;
    const tokens = new Set<string>();
    const subjects: Revocations["subjects"] = [];
    const grants: RoleGrant[] = [];
    for (const [key, resource] of held.resources) {
      if (key.startsWith("Revocation/")) {
        const { spec } = JSON.parse(resource.json) as RevocationResource;
        if (spec.jti !== undefined) tokens.add(spec.jti);
        else if (spec.subject !== undefined) {
          subjects.push({
            subject: spec.subject,
            ...(spec.issuedBefore === undefined ? {} : { issuedBefore: spec.issuedBefore }),
          });
        }
      } else if (key.startsWith("WorkloadCredential/")) {
        const { spec } = JSON.parse(resource.json) as WorkloadCredentialResource;
        if (spec.roles === undefined || spec.disabled === true) continue;
        grants.push({
          service: spec.service,
          roles: spec.roles,
          ...(spec.expires === undefined ? {} : { expires: spec.expires }),
        });
      }
    }
    this.#adminIdentity = {
      version: held.version,
      revocations: { tokens: [...tokens].sort().map((jti) => ({ jti })), subjects },
      grants,
    };
    return this.#adminIdentity;
  }

  /** The store's version, what it published and when, drift, and the routers' versions. */
  async status(): Promise<StoreStatus> {
    const now = this.now();
    this.#dropSilentRouters(now);
    const version = this.#current().version;
    const state = this.#publishState();
    const alarm = await this.ctx.storage.getAlarm();
    let kv: StoreStatus["kv"];
    let drift: Drift | null = null;
    try {
      const read = await this.#readKvIndex();
      kv = { version: read.version, error: null };
      drift = driftOf(
        { hash: read.hash, version: read.version },
        {
          version: state.version,
          hash: state.index_hash,
          at: state.at,
          replaced: this.#replaced(),
        },
        now,
      );
      if (drift !== null && read.version !== null && !isUsableVersion(read.version)) {
        drift.message += ` Its version is not a whole number below ${VERSION_LIMIT}: this store will not number a version above it; replace or delete KV's mesh/index by hand.`;
      }
    } catch (error) {
      kv = { version: null, error: `reading mesh/index failed: ${errorText(error)}` };
    }
    const isolates = this.ctx.storage.sql
      .exec<{
        isolate: string;
        colo: string | null;
        version: number | null;
        applied_at: string | null;
        error: string | null;
        reported_at: number;
      }>(
        "SELECT isolate, colo, version, applied_at, error, reported_at FROM routers ORDER BY reported_at DESC",
      )
      .toArray()
      .map((row) => ({
        isolate: row.isolate,
        colo: row.colo,
        version: row.version,
        appliedAt: row.applied_at,
        error: row.error,
        reportedAt: new Date(row.reported_at).toISOString(),
      }));
    const published = state.version;
    return {
      now: new Date(now).toISOString(),
      version,
      published: {
        version: published,
        at: state.at === null ? null : new Date(state.at).toISOString(),
        pending: version > (published ?? 0),
        nextAttemptAt: alarm === null ? null : new Date(alarm).toISOString(),
        lastError:
          state.last_error === null
            ? null
            : {
                message: state.last_error,
                at: new Date(state.last_error_at ?? now).toISOString(),
                failures: state.failures,
              },
        cleanupError:
          state.cleanup_error === null
            ? null
            : {
                message: state.cleanup_error,
                at: new Date(state.cleanup_error_at ?? now).toISOString(),
              },
      },
      kv,
      drift,
      routers: {
        total: isolates.length,
        current: isolates.filter((r) => r.version !== null && r.version === published).length,
        behind: isolates.filter((r) => r.version === null || r.version !== published).length,
        withError: isolates.filter((r) => r.error !== null).length,
        isolates,
      },
    };
  }

  // ---- Writing ----

  /**
   * Applies one write, after every write before it: checks `ifMatch`, builds the whole config
   * the write proposes, validates it, and commits it as a new version unless it changes nothing
   * (or this is a dry run). Refusals are recorded in the audit log; dry runs are not.
   */
  write(request: WriteRequest): Promise<WriteResult> {
    return this.#serially(() => this.#write(request));
  }

  /** Records a refusal the Worker decided (an unauthenticated caller, a viewer writing). */
  recordRefusal(entry: RefusalEntry): void {
    this.#audit({ ...entry, version: this.#current().version });
  }

  /** Keeps a router isolate's report (already checked by the Worker) with the time it arrived. */
  reportRouter(report: RouterReport): void {
    const now = this.now();
    this.ctx.storage.sql.exec(
      `INSERT INTO routers (isolate, colo, version, applied_at, error, reported_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (isolate) DO UPDATE SET colo = excluded.colo, version = excluded.version,
         applied_at = excluded.applied_at, error = excluded.error, reported_at = excluded.reported_at`,
      report.isolate,
      report.colo,
      report.version,
      report.appliedAt,
      report.error,
      now,
    );
    // Tidy up now and then, not on every report.
    if (++this.#reportInserts % 100 === 1) this.#dropSilentRouters(now);
  }

  async #write(request: WriteRequest): Promise<WriteResult> {
    const audit = (outcome: string, detail: string, version = this.#current().version) => {
      if (!request.dryRun) {
        this.#audit({
          actor: request.author,
          action: request.action,
          outcome,
          version,
          detail,
        });
      }
    };
    const importIssues = await this.#importFromKv();
    if (importIssues.length > 0) {
      const message = `KV holds a config this store has not imported (published outside it), and it is not valid, so no write can build on it: ${issuesDetail(importIssues)}. Fix or delete KV's mesh/index, then retry.`;
      audit("invalid_config", message);
      return { ok: false, code: "invalid_config", message, version: 0, issues: importIssues };
    }
    const held = this.#current();
    if (request.ifMatch !== undefined && request.ifMatch !== held.version) {
      const message = `If-Match names version ${request.ifMatch}, but the current version is ${held.version}: read it again and retry`;
      audit("version_conflict", message);
      return { ok: false, code: "version_conflict", message, version: held.version };
    }
    const change = this.#change(request, held);
    if ("notFound" in change) {
      audit("not_found", change.notFound);
      return { ok: false, code: "not_found", message: change.notFound, version: held.version };
    }
    const proposal = proposeConfig(
      [...held.resources.values()].map((r) => JSON.parse(r.json) as unknown),
      change,
    );
    const validation = validateResources(proposal.resources);
    const warnings = relabelIssues(validation.warnings, proposal.labels);
    let issues = validation.ok ? [] : relabelIssues(validation.issues, proposal.labels);
    if (validation.ok) {
      // What validation cannot see: a destination's entry or the index too large for KV.
      const build = buildSnapshot(validation.value, held.version + 1, new Date(this.now()));
      if (!build.ok) issues = build.issues;
    }
    if (issues.length > 0) {
      audit("invalid_config", issuesDetail(issues));
      // A delete is refused when something still attaches to what it deletes: say so first.
      const what =
        request.op === "delete"
          ? `deleting ${request.kind}/${request.name} would leave the config invalid`
          : "the config this write makes is invalid";
      return {
        ok: false,
        code: "invalid_config",
        message: `${what}: ${issuesDetail(issues)}`,
        version: held.version,
        issues,
      };
    }
    const next = new Map<string, HeldResource>();
    const texts = new Map<string, string>();
    for (const resource of proposal.resources) {
      const key = resourceKey(resource)!;
      const json = canonicalJson(resource);
      texts.set(key, json);
      const old = held.resources.get(key);
      next.set(key, old !== undefined && old.json === json ? old : { hash: "", json });
    }
    const diff = diffConfigs(new Map([...held.resources].map(([key, r]) => [key, r.json])), texts);
    if (isEmptyDiff(diff) || request.dryRun) {
      if (!request.dryRun) {
        audit("unchanged", summarize(change, diff));
        // The alarm checks that KV still holds the latest version (a wiped KV gets it again).
        if (held.version > 0) await this.#schedulePublish();
      }
      return { ok: true, version: held.version, committed: false, warnings, diff };
    }
    for (const resource of next.values()) {
      if (resource.hash === "") resource.hash = await sha256Hex(resource.json);
    }
    const ordered = new Map([...next].sort(([a], [b]) => compareKeys(a, b)));
    const version = Math.max(held.version, await this.#kvVersion()) + 1;
    const summary = summarize(change, diff);
    this.ctx.storage.transactionSync(() => {
      this.#commit(version, request.author, summary, ordered, diff);
      this.#audit({
        actor: request.author,
        action: request.action,
        outcome: "committed",
        version,
        detail: summary,
      });
    });
    this.#held = { version, resources: ordered };
    await this.#schedulePublish();
    return { ok: true, version, committed: true, warnings, diff };
  }

  /** The change a request makes of `held`, or why it names nothing to change. */
  #change(request: WriteRequest, held: HeldConfig): ConfigChange | { notFound: string } {
    switch (request.op) {
      case "apply":
        return { op: "apply", resources: request.resources, prune: request.prune === true };
      case "put":
        return { op: "put", kind: request.kind, name: request.name, resource: request.resource };
      case "delete":
        if (!held.resources.has(`${request.kind}/${request.name}`)) {
          return { notFound: `there is no ${request.kind}/${request.name} to delete` };
        }
        return { op: "delete", kind: request.kind, name: request.name };
      case "rollback": {
        const exists = this.ctx.storage.sql
          .exec("SELECT 1 FROM versions WHERE version = ?", request.version)
          .toArray();
        if (exists.length === 0) return { notFound: `there is no version ${request.version}` };
        return {
          op: "rollback",
          version: request.version,
          resources: this.#resourcesOf(request.version).map((r) => JSON.parse(r.json) as unknown),
        };
      }
    }
  }

  /** Stores version `version` (inside the caller's transaction). */
  #commit(
    version: number,
    author: string,
    summary: string,
    resources: ReadonlyMap<string, HeldResource>,
    diff: ConfigDiff,
  ): void {
    const sql = this.ctx.storage.sql;
    for (const resource of resources.values()) {
      sql.exec(
        "INSERT OR IGNORE INTO resources (hash, json) VALUES (?, ?)",
        resource.hash,
        resource.json,
      );
    }
    sql.exec(
      "INSERT INTO versions (version, at, author, summary) VALUES (?, ?, ?, ?)",
      version,
      this.now(),
      clip(author, 300),
      summary,
    );
    this.#putPart(version, "manifest", JSON.stringify([...resources.values()].map((r) => r.hash)));
    this.#putPart(version, "diff", JSON.stringify(diff));
  }

  /** Runs `task` once every write started before it has finished. */
  #serially<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#writes.then(task, task);
    this.#writes = run.catch(() => undefined);
    return run;
  }

  /**
   * The version KV holds (a store starting on a KV that `npm run publish` filled, or a direct
   * edit): new versions are numbered above it. When KV cannot be read, the highest it was seen
   * to hold; KV's answer may also be up to a minute old, and publishing covers that case.
   */
  async #kvVersion(): Promise<number> {
    const known = this.#publishState().kv_version ?? 0;
    try {
      // Bounded: every write behind this one waits too.
      const read = await this.#readKvIndexWithin();
      const version = read.version ?? 0;
      if (!isUsableVersion(version)) {
        // Never numbered above: status reports it as drift, and publishing says why it cannot.
        console.warn(
          JSON.stringify({ level: "warn", event: "kv_version_unusable", version, using: known }),
        );
        return known;
      }
      if (version > known) {
        this.ctx.storage.sql.exec("UPDATE publish_state SET kv_version = ? WHERE id = 1", version);
      }
      return Math.max(version, known);
    } catch (error) {
      console.warn(
        JSON.stringify({
          level: "warn",
          event: "kv_version_unread",
          error: errorText(error),
          using: known,
        }),
      );
      return known;
    }
  }

  /** KV's index, waiting at most KV_READ_TIMEOUT_MS (every write behind this one waits too). */
  #readKvIndexWithin(): Promise<KvIndexRead> {
    return withDeadline(
      KV_READ_TIMEOUT_MS,
      () => this.#readKvIndex(),
      () => new Error(`no answer within ${KV_READ_TIMEOUT_MS} ms`),
    );
  }

  /** What KV's `mesh/index` holds, read as the router reads it. */
  async #readKvIndex(): Promise<KvIndexRead> {
    const text = await this.env.MESH_CONFIG.get(INDEX_KEY, "text");
    if (text === null) return { text, hash: null, index: null, version: null };
    let index: SnapshotIndex | null = null;
    try {
      const parsed = parseIndex(JSON.parse(text));
      if (parsed.ok) index = parsed.value;
    } catch {
      // Not JSON: no index, and its version is unreadable.
    }
    return {
      text,
      hash: await sha256Hex(text),
      index,
      version: index?.version ?? indexVersion(text),
    };
  }

  /** Imports KV's config before a read, on the write chain; a failure is left to the writes. */
  async #importBeforeFirstRead(): Promise<void> {
    if (this.#current().version !== 0) return;
    await this.#serially(() => this.#importFromKv());
  }

  /**
   * When the store has no version yet and KV holds an index it did not write (`npm run publish`,
   * an older checkout), commits that config as a version numbered as KV's, so writes build on
   * it rather than replace it. Rebuilt from the snapshot: every resource some entry holds.
   * Returns why it cannot (issues prefixed `kv:`), or none. Runs on the write chain.
   */
  async #importFromKv(): Promise<ConfigIssue[]> {
    if (this.#current().version !== 0) return [];
    let read: KvIndexRead;
    try {
      read = await this.#readKvIndexWithin();
    } catch (error) {
      // As when numbering a write: KV unreadable is not a reason to refuse it.
      console.warn(
        JSON.stringify({ level: "warn", event: "kv_import_unread", error: errorText(error) }),
      );
      return [];
    }
    if (read.text === null || read.hash === null || this.#wrote(read.hash)) return [];
    const kvIssue = (path: string, message: string): ConfigIssue[] => [
      { path: `kv:${path}`, message },
    ];
    if (read.index === null) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(read.text);
      } catch (error) {
        return kvIssue(INDEX_KEY, `not JSON: ${errorText(error)}`);
      }
      const result = parseIndex(parsed);
      return result.ok ? [] : result.issues.map((i) => ({ ...i, path: `kv:${i.path}` }));
    }
    const index = read.index;
    if (!isUsableVersion(index.version)) {
      return kvIssue(
        `${INDEX_KEY}.version`,
        `${index.version} is not a version this store numbers (a whole number below ${VERSION_LIMIT})`,
      );
    }
    const keys = [...new Set(Object.values(index.destinations))];
    const texts = new Map<string, string | null>();
    const all = index.identity === undefined ? keys : [...keys, index.identity];
    for (let start = 0; start < all.length; start += IMPORT_CONCURRENCY) {
      const batch = all.slice(start, start + IMPORT_CONCURRENCY);
      const got = await Promise.all(batch.map((key) => this.env.MESH_CONFIG.get(key, "text")));
      batch.forEach((key, i) => texts.set(key, got[i] ?? null));
    }
    const issues: ConfigIssue[] = [];
    const resources = new Map<string, unknown>();
    const add = (list: readonly unknown[]) => {
      for (const resource of list) {
        const key = resourceKey(resource);
        if (key !== undefined && !resources.has(key)) resources.set(key, resource);
      }
    };
    const entryJson = (key: string): unknown => {
      const text = texts.get(key) ?? null;
      if (text === null) {
        issues.push(...kvIssue(key, "named by mesh/index, but not in KV"));
        return undefined;
      }
      try {
        return JSON.parse(text) as unknown;
      } catch (error) {
        issues.push(...kvIssue(key, `not JSON: ${errorText(error)}`));
        return undefined;
      }
    };
    for (const key of keys) {
      const json = entryJson(key);
      if (json === undefined) continue;
      const entry = parseEntry(json, key);
      if (!entry.ok) {
        issues.push(...entry.issues.map((i) => ({ ...i, path: `kv:${i.path}` })));
        continue;
      }
      const e = entry.value;
      add([e.service, ...e.routes, ...e.backends, ...e.policies, ...e.faults]);
      add([...e.authorization, ...e.peerAuthentication, ...(e.settings ? [e.settings] : [])]);
    }
    if (index.identity !== undefined) {
      const json = entryJson(index.identity);
      if (json !== undefined) {
        const entry = parseIdentityEntry(json, index.identity);
        if (entry.ok) add([...entry.value.credentials, ...entry.value.revocations]);
        else issues.push(...entry.issues.map((i) => ({ ...i, path: `kv:${i.path}` })));
      }
    }
    if (issues.length > 0) return issues;
    const values = [...resources.values()];
    const validation = validateResources(values);
    if (!validation.ok) return validation.issues.map((i) => ({ ...i, path: `kv:${i.path}` }));
    const held = new Map<string, HeldResource>();
    for (const [key, resource] of [...resources].sort(([a], [b]) => compareKeys(a, b))) {
      const json = canonicalJson(resource);
      held.set(key, { hash: await sha256Hex(json), json });
    }
    const diff = diffConfigs(new Map(), new Map([...held].map(([key, r]) => [key, r.json])));
    const version = index.version;
    const summary = `imported version ${version} from KV (published outside this store): ${held.size} resources rebuilt from its snapshot; resources no destination entry or the identity entry held (e.g. a Service nothing routes to that is no destination) could not be recovered`;
    const at = this.now();
    this.ctx.storage.transactionSync(() => {
      this.#commit(version, IMPORT_AUTHOR, summary, held, diff);
      this.#audit({
        actor: IMPORT_AUTHOR,
        action: "import",
        outcome: "committed",
        version,
        detail: summary,
      });
      // What KV holds is this version: published, not drift.
      this.#markPublished(version, read.hash!, at);
    });
    this.#held = { version, resources: held };
    return [];
  }

  /** True when this store wrote the index with SHA-256 `hash`. */
  #wrote(hash: string): boolean {
    return (
      this.ctx.storage.sql.exec("SELECT 1 FROM published_indexes WHERE hash = ?", hash).toArray()
        .length > 0
    );
  }

  /** Indexes this store wrote that a later publish of its own replaced, with when. */
  #replaced(): { hash: string; at: number }[] {
    return this.ctx.storage.sql
      .exec<{ hash: string; replaced_at: number }>(
        "SELECT hash, replaced_at FROM published_indexes WHERE replaced_at IS NOT NULL",
      )
      .toArray()
      .map((row) => ({ hash: row.hash, at: row.replaced_at }));
  }

  /**
   * Records that KV's index is now the one with `hash`, of `version` (inside the caller's
   * transaction, or on its own): the index this store last published, and the versions KV holds.
   */
  #markPublished(version: number, hash: string, at: number): void {
    const sql = this.ctx.storage.sql;
    sql.exec(
      "UPDATE published_indexes SET replaced_at = ? WHERE replaced_at IS NULL AND hash != ?",
      at,
      hash,
    );
    sql.exec(
      `INSERT INTO published_indexes (hash, version, at, replaced_at) VALUES (?, ?, ?, NULL)
       ON CONFLICT (hash) DO UPDATE SET version = excluded.version, at = excluded.at, replaced_at = NULL`,
      hash,
      version,
      at,
    );
    sql.exec(
      `DELETE FROM published_indexes WHERE replaced_at < ?
         AND hash NOT IN (SELECT hash FROM published_indexes ORDER BY at DESC LIMIT ?)`,
      at - PROPAGATION_MS,
      PUBLISHED_INDEXES_KEPT,
    );
    sql.exec(
      `UPDATE publish_state SET version = ?, index_hash = ?, at = ?,
         failures = 0, last_error = NULL, last_error_at = NULL,
         kv_version = MAX(COALESCE(kv_version, 0), ?) WHERE id = 1`,
      version,
      hash,
      at,
      version,
    );
  }

  // ---- Publishing ----

  /**
   * Publishes the latest version, unless it is published and KV still holds it; on failure,
   * retries later.
   */
  override async alarm(): Promise<void> {
    const latest = this.#latestVersion();
    const state = this.#publishState();
    if (latest === 0) return;
    const startedAt = this.now();
    if (state.version === latest) {
      // Published: unless KV lost it (wiped, or written over since), nothing to do.
      let read: KvIndexRead;
      try {
        read = await this.#readKvIndex();
      } catch (error) {
        console.warn(
          JSON.stringify({ level: "warn", event: "kv_check_failed", error: errorText(error) }),
        );
        return;
      }
      if (read.hash === state.index_hash) return;
      if (isPropagating(read.hash, { replaced: this.#replaced() }, startedAt)) return;
    }
    this.ctx.storage.sql.exec("UPDATE publish_state SET attempt_at = ? WHERE id = 1", startedAt);
    let target = latest;
    let indexWritten = false;
    let cleanupError: string | null = null;
    const base = kvSnapshotStore(this.env.MESH_CONFIG);
    const kv: SnapshotStore = {
      ...base,
      putMany: async (writes) => {
        const index = writes.find((w) => w.key === INDEX_KEY);
        if (index === undefined) return base.putMany(writes);
        // The index first and on its own: once it is in KV the version is published, and the
        // store records so at once, whatever fails after it.
        await base.putMany([index]);
        this.#markPublished(target, await sha256Hex(index.value), startedAt);
        indexWritten = true;
        const rest = writes.filter((w) => w !== index);
        try {
          await base.putMany(rest);
        } catch (error) {
          cleanupError = `writing ${rest.map((w) => w.key).join(", ")} failed: ${errorText(error)}`;
        }
      },
      deleteMany: async (keys) => {
        try {
          await base.deleteMany(keys);
        } catch (error) {
          cleanupError ??= `deleting ${keys.length} unreferenced entries failed: ${errorText(error)}`;
        }
      },
    };
    try {
      const read = await this.#readKvIndex();
      const kvVersion = read.version ?? 0;
      if (!isUsableVersion(kvVersion)) {
        throw new Error(
          `KV's mesh/index holds version ${kvVersion}, which is not a whole number below ${VERSION_LIMIT}: this store will not number a version above it. Replace or delete KV's mesh/index by hand.`,
        );
      }
      if (read.hash !== null && kvVersion === latest && this.#wrote(read.hash)) {
        // KV holds the latest as this store wrote it (its publish was not recorded): done.
        this.#markPublished(latest, read.hash, startedAt);
        return;
      }
      // KV holds this version or a later one that the store did not write (its answer to a
      // write's check was stale, or an edit came in since): publish the latest again, above it.
      if (kvVersion >= latest) {
        target = await this.#serially(() => this.#renumberAbove(kvVersion));
      }
      const values = this.#resourcesOf(target).map((r) => JSON.parse(r.json) as unknown);
      const validation = validateResources(values);
      if (!validation.ok) {
        throw new Error(
          `version ${target} no longer passes validation (the validation rules changed since it was committed): ${issuesDetail(validation.issues)}`,
        );
      }
      const result = await publishConfig(kv, validation.value, {
        version: target,
        now: new Date(startedAt),
      });
      if (!result.ok) throw new Error(issuesDetail(result.issues));
      console.log(
        JSON.stringify({
          level: "info",
          event: "config_published",
          version: target,
          entriesWritten: result.entriesWritten,
          entriesDeleted: result.entriesDeleted,
        }),
      );
    } catch (error) {
      if (!indexWritten) {
        await this.#publishFailed(state.failures + 1, target, error);
        return;
      }
      // Published all the same: what failed after the index is cleanup.
      cleanupError ??= errorText(error);
    }
    this.ctx.storage.sql.exec(
      "UPDATE publish_state SET cleanup_error = ?, cleanup_error_at = ? WHERE id = 1",
      cleanupError === null
        ? null
        : clip(`after publishing version ${target}: ${cleanupError}`, 2000),
      cleanupError === null ? null : this.now(),
    );
    if (cleanupError !== null) {
      console.warn(
        JSON.stringify({
          level: "warn",
          event: "publish_cleanup_failed",
          version: target,
          error: cleanupError,
        }),
      );
    }
    // Versions committed while this publish ran go out together, a spacing after it began.
    if (this.#latestVersion() > target && (await this.ctx.storage.getAlarm()) === null) {
      await this.ctx.storage.setAlarm(publishAt(this.now(), startedAt));
    }
  }

  /** Records a failed publish and sets the alarm to retry it, backing off. */
  async #publishFailed(failures: number, version: number, error: unknown): Promise<void> {
    const message = `publishing version ${version} to KV failed: ${errorText(error)}`;
    this.ctx.storage.sql.exec(
      "UPDATE publish_state SET failures = ?, last_error = ?, last_error_at = ? WHERE id = 1",
      failures,
      clip(message, 2000),
      this.now(),
    );
    console.error(JSON.stringify({ level: "error", event: "publish_failed", failures, message }));
    // Not thrown: the runtime's own alarm retries would not back off as far, nor say why.
    const retryAt = this.now() + retryDelayMs(failures);
    const scheduled = await this.ctx.storage.getAlarm();
    if (scheduled === null || scheduled > retryAt) await this.ctx.storage.setAlarm(retryAt);
  }

  /**
   * A copy of the latest version numbered above `kvVersion`, so its publish replaces what KV holds
   * (runs on the write chain). Returns the version to publish: the latest, when a write since has
   * already been numbered above KV.
   */
  async #renumberAbove(kvVersion: number): Promise<number> {
    const held = this.#current();
    if (held.version > kvVersion) return held.version;
    const version = kvVersion + 1;
    const summary = `version ${held.version} again, renumbered above version ${kvVersion}, which KV held (not written by this store)`;
    this.ctx.storage.transactionSync(() => {
      this.#commit(version, STORE_AUTHOR, summary, held.resources, {
        added: [],
        changed: [],
        removed: [],
      });
      this.#audit({
        actor: STORE_AUTHOR,
        action: "publish",
        outcome: "committed",
        version,
        detail: summary,
      });
      this.ctx.storage.sql.exec("UPDATE publish_state SET kv_version = ? WHERE id = 1", kvVersion);
    });
    this.#held = { version, resources: held.resources };
    return version;
  }

  /** Sets the alarm for a version just committed, unless one is set (a publish or a retry). */
  async #schedulePublish(): Promise<void> {
    if ((await this.ctx.storage.getAlarm()) !== null) return;
    await this.ctx.storage.setAlarm(publishAt(this.now(), this.#publishState().attempt_at));
  }

  // ---- Storage helpers ----

  #current(): HeldConfig {
    if (this.#held === undefined) {
      const version = this.#latestVersion();
      const resources = new Map<string, HeldResource>();
      if (version > 0) {
        for (const resource of this.#resourcesOf(version)) {
          resources.set(resourceKey(JSON.parse(resource.json))!, resource);
        }
      }
      this.#held = { version, resources };
    }
    return this.#held;
  }

  #latestVersion(): number {
    return (
      this.ctx.storage.sql
        .exec<{ version: number | null }>("SELECT MAX(version) AS version FROM versions")
        .one().version ?? 0
    );
  }

  #resourcesOf(version: number): HeldResource[] {
    const hashes = JSON.parse(this.#getPart(version, "manifest") ?? "[]") as string[];
    const sql = this.ctx.storage.sql;
    return hashes.map((hash) => ({
      hash,
      json: sql.exec<{ json: string }>("SELECT json FROM resources WHERE hash = ?", hash).one()
        .json,
    }));
  }

  #summary(row: VersionRow): VersionSummary {
    const diff = JSON.parse(this.#getPart(row.version, "diff") ?? "{}") as Partial<ConfigDiff>;
    return {
      version: row.version,
      at: new Date(row.at).toISOString(),
      author: row.author,
      summary: row.summary,
      added: diff.added ?? [],
      changed: diff.changed ?? [],
      removed: diff.removed ?? [],
    };
  }

  #putPart(version: number, part: string, text: string): void {
    let seq = 0;
    let start = 0;
    do {
      let end = Math.min(start + CHUNK_CHARS, text.length);
      // Never between the two halves of a surrogate pair: neither half is text on its own.
      const last = text.charCodeAt(end - 1);
      if (end < text.length && last >= 0xd800 && last <= 0xdbff) end--;
      this.ctx.storage.sql.exec(
        "INSERT INTO version_parts (version, part, seq, text) VALUES (?, ?, ?, ?)",
        version,
        part,
        seq++,
        text.slice(start, end),
      );
      start = end;
    } while (start < text.length);
  }

  #getPart(version: number, part: string): string | undefined {
    const chunks = this.ctx.storage.sql
      .exec<{ text: string }>(
        "SELECT text FROM version_parts WHERE version = ? AND part = ? ORDER BY seq",
        version,
        part,
      )
      .toArray();
    return chunks.length === 0 ? undefined : chunks.map((c) => c.text).join("");
  }

  #publishState(): PublishState {
    return this.ctx.storage.sql
      .exec<PublishState>(
        "SELECT version, index_hash, at, attempt_at, failures, last_error, last_error_at, kv_version, cleanup_error, cleanup_error_at FROM publish_state WHERE id = 1",
      )
      .one();
  }

  #audit(entry: RefusalEntry & { version: number | null }): void {
    const sql = this.ctx.storage.sql;
    sql.exec(
      "INSERT INTO audit (at, actor, action, outcome, version, detail) VALUES (?, ?, ?, ?, ?, ?)",
      this.now(),
      clip(entry.actor, 300),
      clip(entry.action, 300),
      clip(entry.outcome, 64),
      entry.version,
      clip(entry.detail, 2000),
    );
    if (++this.#auditInserts % 100 === 0) {
      sql.exec("DELETE FROM audit WHERE id <= (SELECT MAX(id) FROM audit) - ?", MAX_AUDIT_ENTRIES);
    }
  }

  #dropSilentRouters(now: number): void {
    const sql = this.ctx.storage.sql;
    sql.exec("DELETE FROM routers WHERE reported_at < ?", now - ROUTER_REPORT_TTL_MS);
    const { count } = sql.exec<{ count: number }>("SELECT COUNT(*) AS count FROM routers").one();
    if (count > MAX_ROUTER_REPORTS) {
      sql.exec(
        "DELETE FROM routers WHERE isolate IN (SELECT isolate FROM routers ORDER BY reported_at LIMIT ?)",
        count - MAX_ROUTER_REPORTS,
      );
    }
  }
}

/** The version an index text holds, or null. */
function indexVersion(text: string | null): number | null {
  if (text === null) return null;
  try {
    const version = (JSON.parse(text) as { version?: unknown }).version;
    return typeof version === "number" && Number.isInteger(version) ? version : null;
  } catch {
    return null;
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
