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
import {
  admit,
  CLOSED,
  current,
  record,
  type BreakerPolicy,
  type BreakerState,
} from "../core/resilience/breaker.ts";
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
/** `caller:<service name>` is far shorter; anything longer is not a key the router makes. */
const MAX_LIMIT_KEY_LENGTH = 256;
/** Budget windows (ms) kept at once: isolates on two config versions may report two. */
const MAX_BUDGET_WINDOWS = 4;

/** A count no honest isolate reports in one second; larger ones are clamped. */
const MAX_COUNT = 1e9;
const count = (n: unknown) =>
  typeof n === "number" && Number.isFinite(n) && n > 0 ? Math.min(n, MAX_COUNT) : 0;

/** A breaker policy as a report carries it, when every field is a sane number; else undefined. */
function breakerPolicy(p: BreakerPolicy | undefined): BreakerPolicy | undefined {
  if (!p) return undefined;
  const finite = (n: unknown, min: number) =>
    typeof n === "number" && Number.isFinite(n) && n >= min;
  const ok =
    finite(p.consecutiveFailures, 0) &&
    (p.failureRate === undefined || (finite(p.failureRate, 0) && p.failureRate <= 1)) &&
    finite(p.minimumRequests, 1) &&
    finite(p.windowMs, 1) &&
    finite(p.baseOpenMs, 1) &&
    finite(p.maxOpenMs, 1) &&
    finite(p.openJitter, 0) &&
    finite(p.halfOpenProbes, 1);
  return ok ? p : undefined;
}

interface BudgetWindow {
  requests: SlidingCounter;
  retries: SlidingCounter;
}

export class BackendState extends DurableObject {
  /** Budget counts by window length (the isolates' policy), newest policy last. */
  private readonly budgets = new Map<number, BudgetWindow>();
  private latency: RollingLatency | undefined;
  private readonly limits = new Map<string, SlidingCounter>();

  /** Takes one isolate's report and answers the mesh-wide state. */
  report(report: BackendReport): BackendView {
    const now = Date.now();
    const storage = this.ctx.storage;
    let breaker = storage.kv.get<BreakerState>(BREAKER_KEY);
    const policy = breakerPolicy(report.breaker?.policy);
    if (report.breaker && policy) {
      const o = report.breaker.outcomes;
      const outcomes = {
        successes: count(o.successes),
        failures: count(o.failures),
        trailingFailures: Math.min(count(o.trailingFailures), count(o.failures)),
        // Only probes close a half-open breaker; a report that does not say counts none.
        probeSuccesses: Math.min(count(o.probeSuccesses), count(o.successes)),
      };
      breaker = record(breaker ?? CLOSED, policy, outcomes, now, Math.random);
      storage.kv.put(BREAKER_KEY, breaker);
    }
    // Half-open probes are the mesh's: the first isolates to ask get them, the rest wait.
    let probes = 0;
    if (report.breaker?.wantsProbe === true && policy && breaker) {
      const probe = admit(breaker, policy, now);
      if (probe.admitted && probe.state.kind === "half-open") {
        breaker = probe.state;
        storage.kv.put(BREAKER_KEY, breaker);
        probes = 1;
      }
    }
    const budget = report.budget && this.budgetWindow(report.budget.windowMs, now);
    if (report.budget && budget) {
      budget.requests.add(count(report.budget.requests), now);
      budget.retries.add(count(report.budget.retries), now);
    }
    if (report.latency) {
      this.latency ??= new RollingLatency(LATENCY_WINDOW_MS, now);
      this.latency.recordCounts(report.latency, now);
    }
    for (const [key, demand] of Object.entries(report.limits ?? {})) {
      if (key.length > MAX_LIMIT_KEY_LENGTH) continue;
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
        budget: report.budget?.windowMs,
        latency: report.latency !== undefined,
        limits: report.limits && Object.keys(report.limits),
      },
      breaker,
      now,
      probes,
    );
  }

  /** The counts of the budget window `windowMs` long (a sane length), created on first use. */
  private budgetWindow(windowMs: number, now: number): BudgetWindow | undefined {
    if (!Number.isFinite(windowMs) || windowMs < 1000 || windowMs > 600_000) return undefined;
    let window = this.budgets.get(windowMs);
    if (!window) {
      if (this.budgets.size >= MAX_BUDGET_WINDOWS) {
        this.budgets.delete(this.budgets.keys().next().value!);
      }
      window = {
        requests: new SlidingCounter(windowMs, now),
        retries: new SlidingCounter(windowMs, now),
      };
      this.budgets.set(windowMs, window);
    }
    return window;
  }

  /** The mesh-wide state, without reporting anything (for status pages and tests). */
  view(): BackendView {
    const newest = [...this.budgets.keys()].at(-1);
    return this.answer(
      { budget: newest, latency: true, limits: [...this.limits.keys()] },
      this.ctx.storage.kv.get<BreakerState>(BREAKER_KEY),
      Date.now(),
    );
  }

  /** The breaker, and the windows asked for: those a report added to. */
  private answer(
    wants: {
      /** The budget window the reporter counts over, when it reported budget counts. */
      budget: number | undefined;
      latency: boolean;
      limits: readonly string[] | undefined;
    },
    breaker: BreakerState | undefined,
    now: number,
    probes = 0,
  ): BackendView {
    const budget = wants.budget === undefined ? undefined : this.budgets.get(wants.budget);
    const limits: Record<string, number> = {};
    for (const key of wants.limits ?? []) {
      const counter = this.limits.get(key);
      if (counter) limits[key] = counter.total(now);
    }
    return {
      breaker: breaker === undefined ? undefined : current(breaker, now),
      ...(probes > 0 ? { probes } : {}),
      ...(budget
        ? { budget: { requests: budget.requests.total(now), retries: budget.retries.total(now) } }
        : {}),
      ...(wants.latency && this.latency ? { latency: toSparse(this.latency.counts(now)) } : {}),
      ...(wants.limits ? { limits } : {}),
      at: now,
    };
  }

  override async alarm(): Promise<void> {
    this.budgets.clear();
    this.latency = undefined;
    this.limits.clear();
    await this.ctx.storage.deleteAll();
  }
}
