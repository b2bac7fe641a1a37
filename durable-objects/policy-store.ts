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
 *    published together), retrying a failure with back-off. KV's version is the store's.
 *  - Audit. Who did what, refused writes included; never a secret.
 *  - Router reports: which version each router isolate has applied.
 *
 * The Worker is the edge: it authenticates, parses bodies and checks their shape; the methods here
 * trust their arguments' types.
 */
import { DurableObject } from "cloudflare:workers";
import type { RevocationResource } from "../core/config/identity-schema.ts";
import { publishConfig, publishedVersion } from "../core/config/publish.ts";
import { buildSnapshot, INDEX_KEY, type Revocations } from "../core/config/snapshot.ts";
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
import { driftOf, type Drift } from "../workers/policy/drift.ts";
import { kvSnapshotStore } from "../workers/policy/kv-snapshot-store.ts";
import { publishAt, retryDelayMs } from "../workers/policy/publish-schedule.ts";
import type { RouterReport } from "../workers/policy/router-report.ts";

/** The name of the one PolicyStore (`env.POLICY_STORE.getByName(POLICY_STORE_NAME)`). */
export const POLICY_STORE_NAME = "mesh";

/** The author of versions the store makes itself (a renumbering above KV's version). */
export const STORE_AUTHOR = "policy-store";
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

/** A router isolate's report, as status shows it. */
export interface RouterView extends RouterReport {
  reportedAt: string;
}

export interface StoreStatus {
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
  previous_hash: string | null;
  at: number | null;
  attempt_at: number | null;
  failures: number;
  last_error: string | null;
  last_error_at: number | null;
  kv_version: number | null;
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
  /** The held config's revocations, computed once per version. */
  #revoked: { version: number; revocations: Revocations } | undefined;
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
      previous_hash TEXT,
      at INTEGER,
      attempt_at INTEGER,
      failures INTEGER NOT NULL DEFAULT 0,
      last_error TEXT,
      last_error_at INTEGER,
      kv_version INTEGER
    )`);
    sql.exec("INSERT OR IGNORE INTO publish_state (id) VALUES (1)");
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

  /** The current version and its resources (version 0 and none before the first write). */
  current(): { version: number; resources: unknown[] } {
    const held = this.#current();
    return {
      version: held.version,
      resources: [...held.resources.values()].map((r) => JSON.parse(r.json) as unknown),
    };
  }

  /** One resource of the current version, or null, with the current version. */
  resource(kind: string, name: string): { version: number; resource: unknown } {
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
   * What the current config revokes, in the snapshot index's compact form: admin SVIDs are
   * checked against it before the KV copy routers read has caught up.
   */
  revocations(): { version: number; revocations: Revocations } {
    const held = this.#current();
    if (this.#revoked?.version === held.version) return this.#revoked;
    const tokens = new Set<string>();
    const subjects: Revocations["subjects"] = [];
    for (const [key, resource] of held.resources) {
      if (!key.startsWith("Revocation/")) continue;
      const { spec } = JSON.parse(resource.json) as RevocationResource;
      if (spec.jti !== undefined) tokens.add(spec.jti);
      else if (spec.subject !== undefined) {
        subjects.push({
          subject: spec.subject,
          ...(spec.issuedBefore === undefined ? {} : { issuedBefore: spec.issuedBefore }),
        });
      }
    }
    this.#revoked = {
      version: held.version,
      revocations: { tokens: [...tokens].sort().map((jti) => ({ jti })), subjects },
    };
    return this.#revoked;
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
      const text = await this.env.MESH_CONFIG.get(INDEX_KEY, "text");
      kv = { version: indexVersion(text), error: null };
      drift = driftOf(
        { hash: text === null ? null : await sha256Hex(text), version: kv.version },
        {
          version: state.version,
          hash: state.index_hash,
          at: state.at,
          previousHash: state.previous_hash,
        },
        now,
      );
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
    const held = this.#current();
    const audit = (outcome: string, detail: string, version = held.version) => {
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
      return {
        ok: false,
        code: "invalid_config",
        message: `the config this write makes is invalid: ${issuesDetail(issues)}`,
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
      if (!request.dryRun) audit("unchanged", summarize(change, diff));
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
      const version = await withDeadline(
        KV_READ_TIMEOUT_MS,
        () => publishedVersion(kvSnapshotStore(this.env.MESH_CONFIG)),
        () => new Error(`no answer within ${KV_READ_TIMEOUT_MS} ms`),
      );
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

  // ---- Publishing ----

  /** Publishes the latest version, unless it is published; on failure, retries later. */
  override async alarm(): Promise<void> {
    const latest = this.#latestVersion();
    const state = this.#publishState();
    // Nothing committed, or the latest is out already (a retry that a later publish overtook).
    if (latest === 0 || state.version === latest) return;
    const startedAt = this.now();
    this.ctx.storage.sql.exec("UPDATE publish_state SET attempt_at = ? WHERE id = 1", startedAt);
    let indexText: string | undefined;
    const kv = kvSnapshotStore(this.env.MESH_CONFIG, (text) => {
      indexText = text;
    });
    try {
      const kvVersion = await publishedVersion(kv);
      // KV holds this version or a later one that the store did not write (its answer to a
      // write's check was stale, or an edit came in since): publish the latest again, above it.
      const target =
        kvVersion >= latest ? await this.#serially(() => this.#renumberAbove(kvVersion)) : latest;
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
      const hash = indexText === undefined ? null : await sha256Hex(indexText);
      this.ctx.storage.sql.exec(
        `UPDATE publish_state SET previous_hash = index_hash, version = ?, index_hash = ?, at = ?,
           failures = 0, last_error = NULL, last_error_at = NULL,
           kv_version = MAX(COALESCE(kv_version, 0), ?) WHERE id = 1`,
        target,
        hash,
        startedAt,
        target,
      );
      console.log(
        JSON.stringify({
          level: "info",
          event: "config_published",
          version: target,
          entriesWritten: result.entriesWritten,
          entriesDeleted: result.entriesDeleted,
        }),
      );
      // Versions committed while this publish ran go out together, a spacing after it began.
      if (this.#latestVersion() > target && (await this.ctx.storage.getAlarm()) === null) {
        await this.ctx.storage.setAlarm(publishAt(this.now(), startedAt));
      }
    } catch (error) {
      const failures = state.failures + 1;
      const message = `publishing version ${latest} to KV failed: ${errorText(error)}`;
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
        "SELECT version, index_hash, previous_hash, at, attempt_at, failures, last_error, last_error_at, kv_version FROM publish_state WHERE id = 1",
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
