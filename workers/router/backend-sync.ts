/**
 * What this isolate tells the Services' Durable Objects, and what it learns back: for each
 * Service with news — breaker outcomes, budget counts, latency, rate-limit demand — one report,
 * sent through `waitUntil` at most once a second and only when there is news; the answer — the
 * Service's mesh-wide state — is adopted into the isolate's state (service-state.ts). A request
 * never waits for any of it.
 *
 * Where the isolate's location is known, it reports to its location's shard of the Service's
 * object (`<service>@<colo>`), which rolls up to the Service's root object (`<service>`): no
 * object sees a report a second from every isolate of the mesh (durable-objects/
 * backend-state.ts). Without a location (local development) it reports to the root.
 *
 * If an object cannot be reached, the isolate keeps its own state (it still trips on what it
 * sees, and enforces budgets and limits on what it knows) and `/.mesh/status` says so; nothing
 * waits or retries in a loop.
 */
import type { BackendReport, BackendView } from "../../core/resilience/report.ts";
import type { IsolateLocation } from "./location.ts";
import type { ServiceState, ServiceStates } from "./service-state.ts";

/** The Durable Object namespace of Service state, as the router binds it. */
export interface BackendStateNamespace {
  getByName(name: string): { report(report: BackendReport): Promise<BackendView> };
}

/** At most one report per isolate per this interval. */
export const FLUSH_INTERVAL_MS = 1000;
/** Reports one `waitUntil` makes at most, before the next outcome schedules anew. */
const MAX_ROUNDS = 5;
/** A report not answered within this is given up (its news is dropped, not sent again). */
export const REPORT_TIMEOUT_MS = 5000;
/**
 * A round scheduled this long ago that has not finished is presumed lost (the runtime can end a
 * `waitUntil` that outlives it), and the next call schedules another.
 */
const SCHEDULE_EXPIRY_MS = 30_000;

/** What `/.mesh/status` shows of the sync. */
export interface SyncView {
  /** The shard this isolate reports to (`<service>@<location>`), or null: the roots. */
  location: string | null;
  /** Reports the objects answered. */
  reports: number;
  /** Reports that failed or timed out (their news was dropped). */
  failedReports: number;
  lastReportAt: string | null;
  lastError: { at: string; message: string } | null;
}

/** `promise`, or a rejection after `ms`. */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | null = null;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => timer !== null && clearTimeout(timer));
}

/** The object a Service's report goes to from `location`: its shard there, else its root. */
export function objectNameFor(service: string, location: string | null): string {
  return location === null ? service : `${service}@${location}`;
}

export class BackendSync {
  private readonly location: IsolateLocation;
  /** When the round in progress was scheduled; undefined when none is. */
  private scheduledAt: number | undefined;
  private lastFlush = 0;
  private reports = 0;
  private failedReports = 0;
  private lastReportAt = 0;
  private lastError: { at: number; message: string } | undefined;

  constructor(location: IsolateLocation) {
    this.location = location;
  }

  /**
   * Makes sure the news goes out: schedules one round of reports, through `waitUntil`, for when
   * the interval since the last one has passed. Cheap when one is already scheduled.
   */
  schedule(
    namespace: BackendStateNamespace | undefined,
    states: ServiceStates,
    now: () => number,
    waitUntil: (promise: Promise<unknown>) => void,
  ): void {
    if (!namespace) return;
    const at = now();
    if (this.scheduledAt !== undefined && at - this.scheduledAt < SCHEDULE_EXPIRY_MS) return;
    this.scheduledAt = at;
    waitUntil(
      this.drain(namespace, states, now).finally(() => {
        if (this.scheduledAt === at) this.scheduledAt = undefined;
      }),
    );
  }

  /**
   * Reports, a second apart, for as long as news keeps arriving (what happens while a report is
   * in flight goes in the next one) — a few rounds at most in one `waitUntil`; after that the
   * next call schedules again.
   */
  private async drain(
    namespace: BackendStateNamespace,
    states: ServiceStates,
    now: () => number,
  ): Promise<void> {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const delay = Math.max(0, this.lastFlush + FLUSH_INTERVAL_MS - now());
      if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
      const news = states.withNews();
      if (news.length === 0) return;
      await this.flush(namespace, news, now);
    }
  }

  private async flush(
    namespace: BackendStateNamespace,
    news: readonly ServiceState[],
    now: () => number,
  ): Promise<void> {
    this.lastFlush = now();
    // A failed report's news is dropped, not kept for the next one: counts that arrive late
    // would land in the wrong part of the object's windows, which misleads more than a gap.
    const location = this.location.colo;
    const results = await Promise.allSettled(
      news.map(async (state) => {
        const report = state.takeReport();
        const object = objectNameFor(state.name, location);
        const view = await withTimeout(
          namespace
            .getByName(object)
            .report(location === null ? report : { ...report, rollUpTo: state.name }),
          REPORT_TIMEOUT_MS,
        );
        state.adoptView(view, now());
      }),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    const failures = results.filter((r) => r.status === "rejected").length;
    this.failedReports += failures;
    this.reports += results.length - failures;
    this.lastReportAt = now();
    this.lastError = failed
      ? {
          at: now(),
          message: `reporting to a Service's Durable Object failed: ${String(failed.reason)}`,
        }
      : undefined;
  }

  view(): SyncView {
    return {
      location: this.location.colo,
      reports: this.reports,
      failedReports: this.failedReports,
      lastReportAt: this.lastReportAt ? new Date(this.lastReportAt).toISOString() : null,
      lastError: this.lastError
        ? { at: new Date(this.lastError.at).toISOString(), message: this.lastError.message }
        : null,
    };
  }
}
