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
 *
 * At scale the objects form a two-level tree per Service (core/resilience/rollup.ts): isolates
 * report to their location's shard, `<service>@<colo>`, which does all of the above for its
 * location and rolls its news up to the Service's root object, `<service>`, on its alarm — at
 * most once a second, only with news — then answers its isolates with the root's mesh-wide
 * view plus what it has not rolled up yet. The root is the same class, fed by shards instead of
 * isolates. Without a known location (local development) isolates report to the root directly.
 */
import { DurableObject } from "cloudflare:workers";
import {
  CLOSED,
  current,
  grantProbes,
  mergeFromRoot,
  record,
  type BreakerPolicy,
  type BreakerState,
} from "../core/resilience/breaker.ts";
import { LATENCY_WINDOW_MS, RollingLatency, toSparse } from "../core/resilience/latency.ts";
import { RATE_WINDOW_MS } from "../core/resilience/rate-limit.ts";
import type { BackendReport, BackendView } from "../core/resilience/report.ts";
import { mergeReports, rollupReport, withPending } from "../core/resilience/rollup.ts";
import { SlidingCounter } from "../core/resilience/window.ts";

export type { BackendReport, BackendView } from "../core/resilience/report.ts";

const BREAKER_KEY = "breaker";
const LAST_REPORT_KEY = "lastReportAt";
/** A Service with no report for this long is forgotten. */
const FORGET_AFTER_MS = 24 * 60 * 60 * 1000;
/** A shard rolls its news up to the root at most once per this interval. */
export const ROLLUP_INTERVAL_MS = 1000;
/** A rollup the root has not answered within this is given up (its news dropped). */
const ROLLUP_TIMEOUT_MS = 5000;
/** A root view older than this no longer stands for the mesh in a shard's answers. */
const ROOT_VIEW_FRESH_MS = 10_000;
/** The longest root name a report may ask a shard to roll up to. */
const MAX_ROOT_NAME_LENGTH = 256;
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

/** What a shard knows of its root: where it is, its last answer, and the news not sent yet. */
interface RootLink {
  name: string;
  view: BackendView | undefined;
  /** When `view` arrived (the shard's clock). */
  viewAt: number;
  /** The budget window `view`'s budget counts are over. */
  viewBudgetWindowMs: number | undefined;
  pending: BackendReport | undefined;
  lastRollupAt: number;
  rollups: number;
  failedRollups: number;
  lastError: string | undefined;
}

export class BackendState extends DurableObject {
  /** Budget counts by window length (the isolates' policy), newest policy last. */
  private readonly budgets = new Map<number, BudgetWindow>();
  private latency: RollingLatency | undefined;
  private readonly limits = new Map<string, SlidingCounter>();
  /** Set when this object is a location shard: its root and the rollup's state. */
  private root: RootLink | undefined;

  /** Takes one isolate's (or, at the root, one shard's) report; answers the mesh-wide state. */
  async report(report: BackendReport): Promise<BackendView> {
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
    // Half-open probes are the mesh's: the first isolates to ask get them (now, or reserved for
    // when it half-opens), the rest wait.
    let probes = 0;
    if (report.breaker?.wantsProbe === true && policy && breaker) {
      const grant = grantProbes(breaker, policy, now);
      if (grant) {
        breaker = grant.state;
        storage.kv.put(BREAKER_KEY, breaker);
        probes = grant.granted;
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
    storage.kv.put(LAST_REPORT_KEY, now);
    const shard = this.shardOf(report.rollUpTo);
    if (shard) {
      shard.pending = mergeReports(shard.pending, report);
      await this.scheduleRollup(shard, now);
    } else if ((await storage.getAlarm()) === null) {
      // Forget a Service a day after its last report (the alarm checks the time it fires).
      await storage.setAlarm(now + FORGET_AFTER_MS);
    }
    const wants = {
      budget: report.budget?.windowMs,
      latency: report.latency !== undefined,
      limits: report.limits && Object.keys(report.limits),
    };
    const answer = this.answer(wants, breaker, now, probes);
    const rootView = shard?.view;
    if (!shard || !rootView || now - shard.viewAt > ROOT_VIEW_FRESH_MS) return answer;
    return {
      ...answer,
      ...withPending(rootView, shard.pending, answer, {
        budgetWindowMs: wants.budget,
        rootBudgetWindowMs: shard.viewBudgetWindowMs,
      }),
    };
  }

  /** The shard link for a report naming its root (a sane name), kept across reports. */
  private shardOf(rollUpTo: unknown): RootLink | undefined {
    if (
      typeof rollUpTo !== "string" ||
      rollUpTo.length === 0 ||
      rollUpTo.length > MAX_ROOT_NAME_LENGTH ||
      rollUpTo.includes("@")
    ) {
      return undefined;
    }
    if (this.root?.name !== rollUpTo) {
      this.root = {
        name: rollUpTo,
        view: undefined,
        viewAt: 0,
        viewBudgetWindowMs: undefined,
        pending: undefined,
        lastRollupAt: 0,
        rollups: 0,
        failedRollups: 0,
        lastError: undefined,
      };
    }
    return this.root;
  }

  /** Sets the alarm for the next rollup, a second after the last one, unless one is set sooner. */
  private async scheduleRollup(shard: RootLink, now: number): Promise<void> {
    const at = Math.max(now, shard.lastRollupAt + ROLLUP_INTERVAL_MS);
    const alarm = await this.ctx.storage.getAlarm();
    if (alarm === null || alarm > at) await this.ctx.storage.setAlarm(at);
  }

  /** Sends the shard's news to the root and takes in the root's answer. */
  private async rollUp(shard: RootLink): Promise<void> {
    if (!shard.pending) return;
    const news = rollupReport(shard.pending, {
      budgetWindowMs: [...this.budgets.keys()].at(-1),
      latency: this.latency !== undefined,
      limitKeys: [...this.limits.keys()],
    });
    shard.pending = undefined;
    shard.lastRollupAt = Date.now();
    const namespace = (this.env as { BACKEND_STATE?: DurableObjectNamespace<BackendState> })
      .BACKEND_STATE;
    if (!namespace) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const view = await Promise.race([
        namespace.getByName(shard.name).report(news),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${ROLLUP_TIMEOUT_MS} ms`)),
            ROLLUP_TIMEOUT_MS,
          );
        }),
      ]);
      const now = Date.now();
      shard.view = view;
      shard.viewAt = now;
      shard.viewBudgetWindowMs = news.budget?.windowMs;
      shard.rollups++;
      shard.lastError = undefined;
      if (view.breaker) {
        const own = this.ctx.storage.kv.get<BreakerState>(BREAKER_KEY) ?? CLOSED;
        this.ctx.storage.kv.put(BREAKER_KEY, mergeFromRoot(own, view.breaker, now));
      }
    } catch (error) {
      // Dropped, as isolates drop a failed report's news: late counts mislead more than a gap.
      shard.failedRollups++;
      shard.lastError = `rolling up to '${shard.name}' failed: ${error instanceof Error ? error.message : String(error)}`;
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
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

  /** A shard's rollup to its root, for status pages and tests (undefined at a root). */
  rollup():
    { root: string; rollups: number; failedRollups: number; lastError: string | null } | undefined {
    const shard = this.root;
    if (!shard) return undefined;
    return {
      root: shard.name,
      rollups: shard.rollups,
      failedRollups: shard.failedRollups,
      lastError: shard.lastError ?? null,
    };
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

  /**
   * A shard's rollup when it has news; and a Service nobody has reported on for a day is
   * forgotten. The alarm is set for whichever comes first.
   */
  override async alarm(): Promise<void> {
    const shard = this.root;
    if (shard?.pending) await this.rollUp(shard);
    const now = Date.now();
    const last = this.ctx.storage.kv.get<number>(LAST_REPORT_KEY) ?? 0;
    if (now - last >= FORGET_AFTER_MS) {
      this.budgets.clear();
      this.latency = undefined;
      this.limits.clear();
      this.root = undefined;
      await this.ctx.storage.deleteAll();
      return;
    }
    // News that arrived during the rollup goes in the next one, a second later.
    await this.ctx.storage.setAlarm(
      shard?.pending ? shard.lastRollupAt + ROLLUP_INTERVAL_MS : last + FORGET_AFTER_MS,
    );
  }
}
