/**
 * BackendState: one Durable Object per Service, holding what every router isolate has learned
 * about it — its circuit breaker, the retries sent to it against its budget, the latency of tries
 * to it, and the demand on its rate limits. It is a thin shell around pure code in
 * core/resilience/: it steps the breaker with the outcomes an isolate reports, adds the isolate's
 * counts to sliding windows, and answers the mesh-wide state, which the isolate adopts.
 *
 * The breaker is stored (SQLite-backed storage, synchronous), so it survives the object being
 * evicted; the windows are seconds to a minute of counts and live in memory — a fresh object
 * starts them empty, which errs towards allowing, and fills them within one report round. No
 * timers decide anything: "open until T" is a timestamp, and the clock makes it half-open. An
 * alarm only forgets a Service nobody has reported on for a day.
 *
 * Isolates call it through `waitUntil`, batched, at most about once a second each and only with
 * news (workers/router/backend-sync.ts): a request never waits for it.
 */
import { DurableObject } from "cloudflare:workers";
import { CLOSED, current, record, type BreakerState } from "../core/resilience/breaker.ts";
import { LATENCY_WINDOW_MS, RollingLatency, toSparse } from "../core/resilience/latency.ts";
import { RATE_WINDOW_MS } from "../core/resilience/rate-limit.ts";
import type { BackendReport, BackendView } from "../core/resilience/report.ts";
import { SlidingCounter } from "../core/resilience/window.ts";

export type { BackendReport, BackendView } from "../core/resilience/report.ts";

const BREAKER_KEY = "breaker";
/** A Service with no report for this long is forgotten. */
const FORGET_AFTER_MS = 24 * 60 * 60 * 1000;
/** Rate-limit keys one object tracks at most (callers beyond it are not counted mesh-wide). */
const MAX_LIMIT_KEYS = 1024;
/** The longest budget window counted (a report asking for more is clamped). */
const MAX_BUDGET_WINDOW_MS = 10 * 60 * 1000;

/** A count no honest isolate reports in one second; larger ones are clamped. */
const MAX_COUNT = 1e9;
const count = (n: unknown) =>
  typeof n === "number" && Number.isFinite(n) && n > 0 ? Math.min(n, MAX_COUNT) : 0;

export class BackendState extends DurableObject {
  private budget: { requests: SlidingCounter; retries: SlidingCounter } | undefined;
  private latency: RollingLatency | undefined;
  private readonly limits = new Map<string, SlidingCounter>();

  /** Takes one isolate's report and answers the mesh-wide state. */
  report(report: BackendReport): BackendView {
    const now = Date.now();
    const storage = this.ctx.storage;
    let breaker = storage.kv.get<BreakerState>(BREAKER_KEY);
    if (report.breaker) {
      const { policy, outcomes } = report.breaker;
      breaker = record(breaker ?? CLOSED, policy, outcomes, now, Math.random);
      storage.kv.put(BREAKER_KEY, breaker);
    }
    if (report.budget) {
      const windowMs = Math.min(MAX_BUDGET_WINDOW_MS, Math.max(1000, report.budget.windowMs));
      if (this.budget?.requests.windowMs !== windowMs) {
        this.budget = {
          requests: new SlidingCounter(windowMs, now),
          retries: new SlidingCounter(windowMs, now),
        };
      }
      this.budget.requests.add(count(report.budget.requests), now);
      this.budget.retries.add(count(report.budget.retries), now);
    }
    if (report.latency) {
      this.latency ??= new RollingLatency(LATENCY_WINDOW_MS, now);
      this.latency.recordCounts(report.latency, now);
    }
    for (const [key, demand] of Object.entries(report.limits ?? {})) {
      let counter = this.limits.get(key);
      if (!counter) {
        if (this.limits.size >= MAX_LIMIT_KEYS) continue;
        counter = new SlidingCounter(RATE_WINDOW_MS, now);
        this.limits.set(key, counter);
      }
      counter.add(count(demand), now);
    }
    // Forget a Service a day after its last report (the alarm moves with every report).
    void storage.setAlarm(now + FORGET_AFTER_MS);
    return this.answer(
      {
        budget: report.budget !== undefined,
        latency: report.latency !== undefined,
        limits: report.limits && Object.keys(report.limits),
      },
      breaker,
      now,
    );
  }

  /** The mesh-wide state, without reporting anything (for status pages and tests). */
  view(): BackendView {
    return this.answer(
      { budget: true, latency: true, limits: [...this.limits.keys()] },
      this.ctx.storage.kv.get<BreakerState>(BREAKER_KEY),
      Date.now(),
    );
  }

  /** The breaker, and the windows asked for: those a report added to. */
  private answer(
    wants: { budget: boolean; latency: boolean; limits: readonly string[] | undefined },
    breaker: BreakerState | undefined,
    now: number,
  ): BackendView {
    const limits: Record<string, number> = {};
    for (const key of wants.limits ?? []) {
      const counter = this.limits.get(key);
      if (counter) limits[key] = counter.total(now);
    }
    return {
      breaker: breaker === undefined ? undefined : current(breaker, now),
      ...(wants.budget && this.budget
        ? {
            budget: {
              requests: this.budget.requests.total(now),
              retries: this.budget.retries.total(now),
            },
          }
        : {}),
      ...(wants.latency && this.latency ? { latency: toSparse(this.latency.counts(now)) } : {}),
      ...(wants.limits ? { limits } : {}),
      at: now,
    };
  }

  override async alarm(): Promise<void> {
    this.budget = undefined;
    this.latency = undefined;
    this.limits.clear();
    await this.ctx.storage.deleteAll();
  }
}
