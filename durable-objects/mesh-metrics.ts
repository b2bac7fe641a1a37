/**
 * MeshMetrics: one Durable Object per destination Service (named by it), holding the golden
 * metrics of every edge into it — caller → destination → backend, by route — as every router
 * isolate counted them: 10-second slots over the last 15 minutes and running totals
 * (core/observability/metrics-store.ts does the arithmetic), plus the breaker states the
 * isolates last saw of its backends and its recent denials.
 *
 * Router isolates flush to the policy Worker at most once a second each, only with news
 * (workers/router/telemetry.ts); the policy Worker's RouterReports entrypoint hands each
 * destination's part to its object. So no object sees the whole mesh: each one sees the isolates
 * that called its destination, once a second each at most. The policy Worker reads the objects
 * for the dashboard, `meshctl stat`/`top` and `/metrics` — or, deployed with Analytics Engine
 * credentials, reads Analytics Engine for the golden metrics instead.
 *
 * Everything is kept in SQLite (synchronous), one row per slot and edge, so an evicted object
 * comes back with its history; rows past the retention are deleted as time moves on.
 */
import { DurableObject } from "cloudflare:workers";
import {
  MetricsStore,
  TOTAL_SLOT,
  type StoredBreaker,
  type TotalsReading,
  type WindowReading,
} from "../core/observability/metrics-store.ts";
import {
  MAX_WINDOW_MS,
  type DenialRecord,
  type DestinationReport,
  type Edge,
  type EdgeCounts,
} from "../core/observability/metrics.ts";

export type { WindowReading, TotalsReading } from "../core/observability/metrics-store.ts";

export class MeshMetrics extends DurableObject<PolicyEnv> {
  private store: MetricsStore | undefined;
  private readonly sql: SqlStorage;
  /** For tests: a clock of their own. */
  now: () => number = Date.now;

  constructor(ctx: DurableObjectState, env: PolicyEnv) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS tallies (
      slot INTEGER NOT NULL, key TEXT NOT NULL, edge TEXT NOT NULL, counts TEXT NOT NULL,
      PRIMARY KEY (slot, key))`);
    this.sql.exec(
      "CREATE TABLE IF NOT EXISTS breakers (backend TEXT PRIMARY KEY, json TEXT NOT NULL)",
    );
    this.sql.exec("CREATE TABLE IF NOT EXISTS denials (json TEXT NOT NULL)");
    this.sql.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
  }

  /** The store of `destination`, loaded from SQLite the first time. */
  private storeFor(destination: string): MetricsStore {
    if (this.store) {
      if (this.store.destination !== destination) {
        throw new Error(
          `bad_request: this metrics object holds ${this.store.destination}, not ${destination}`,
        );
      }
      return this.store;
    }
    const kept = this.sql
      .exec<{ value: string }>("SELECT value FROM meta WHERE key = 'destination'")
      .toArray()[0];
    if (kept && kept.value !== destination) {
      throw new Error(`bad_request: this metrics object holds ${kept.value}, not ${destination}`);
    }
    if (!kept)
      this.sql.exec("INSERT INTO meta (key, value) VALUES ('destination', ?)", destination);
    const store = new MetricsStore(destination);
    for (const row of this.sql.exec<{ slot: number; edge: string; counts: string }>(
      "SELECT slot, edge, counts FROM tallies",
    )) {
      store.restore(row.slot, JSON.parse(row.edge) as Edge, JSON.parse(row.counts) as EdgeCounts);
    }
    for (const row of this.sql.exec<{ json: string }>("SELECT json FROM breakers")) {
      store.restoreBreaker(JSON.parse(row.json) as StoredBreaker);
    }
    store.restoreDenials(
      this.sql
        .exec<{ json: string }>("SELECT json FROM denials")
        .toArray()
        .map((row) => JSON.parse(row.json) as DenialRecord),
    );
    this.store = store;
    return store;
  }

  /** Adds one isolate's counts for this destination (checked by the policy Worker). */
  record(report: DestinationReport): { ok: true } {
    const store = this.storeFor(report.destination);
    const now = this.now();
    this.deleteGone(store.prune(now));
    const touched = store.record(report, now);
    for (const row of touched) {
      const entry = store.row(row);
      if (!entry) continue;
      this.sql.exec(
        "INSERT INTO tallies (slot, key, edge, counts) VALUES (?, ?, ?, ?) ON CONFLICT (slot, key) DO UPDATE SET counts = excluded.counts",
        row.slot,
        row.key,
        JSON.stringify(entry.edge),
        JSON.stringify(entry.tally.toCounts()),
      );
    }
    for (const breaker of report.breakers) {
      this.sql.exec(
        "INSERT INTO breakers (backend, json) VALUES (?, ?) ON CONFLICT (backend) DO UPDATE SET json = excluded.json",
        breaker.backend,
        JSON.stringify({ ...breaker, reportedAt: now }),
      );
    }
    if (report.denials.length > 0) {
      this.sql.exec("DELETE FROM denials");
      for (const denial of store.recentDenials) {
        this.sql.exec("INSERT INTO denials (json) VALUES (?)", JSON.stringify(denial));
      }
    }
    return { ok: true };
  }

  private deleteGone(slots: number[]): void {
    for (const slot of slots) {
      if (slot !== TOTAL_SLOT) this.sql.exec("DELETE FROM tallies WHERE slot = ?", slot);
    }
  }

  /** The counts of the last `windowMs` (10 s to 15 min). */
  window(destination: string, windowMs: number): WindowReading {
    const store = this.storeFor(destination);
    const now = this.now();
    this.deleteGone(store.prune(now));
    return store.window(Math.min(Math.max(windowMs, 1000), MAX_WINDOW_MS), now);
  }

  /** The running totals (Prometheus counters). */
  totals(destination: string): TotalsReading {
    return this.storeFor(destination).totalsReading();
  }
}
