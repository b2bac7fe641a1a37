/**
 * What this isolate tells the Services' Durable Objects, and what it learns back: for each
 * Service with news — breaker outcomes, budget counts, latency, rate-limit demand — one report,
 * sent through `waitUntil` at most once a second and only when there is news; the answer — the
 * Service's mesh-wide state — is adopted into the isolate's state (service-state.ts). A request
 * never waits for any of it.
 *
 * If an object cannot be reached, the isolate keeps its own state (it still trips on what it
 * sees, and enforces budgets and limits on what it knows) and `/.mesh/status` says so; nothing
 * waits or retries in a loop.
 */
import type { BackendReport, BackendView } from "../../core/resilience/report.ts";
import type { ServiceState, ServiceStates } from "./service-state.ts";

/** The Durable Object namespace of Service state, as the router binds it. */
export interface BackendStateNamespace {
  getByName(name: string): { report(report: BackendReport): Promise<BackendView> };
}

/** At most one report per isolate per this interval. */
export const FLUSH_INTERVAL_MS = 1000;
/** Reports one `waitUntil` makes at most, before the next outcome schedules anew. */
const MAX_ROUNDS = 5;

/** What `/.mesh/status` shows of the sync. */
export interface SyncView {
  reports: number;
  lastReportAt: string | null;
  lastError: { at: string; message: string } | null;
}

export class BackendSync {
  private scheduled = false;
  private lastFlush = 0;
  private reports = 0;
  private lastReportAt = 0;
  private lastError: { at: number; message: string } | undefined;

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
    if (!namespace || this.scheduled) return;
    this.scheduled = true;
    waitUntil(this.drain(namespace, states, now).finally(() => (this.scheduled = false)));
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
    const results = await Promise.allSettled(
      news.map(async (state) => {
        const view = await namespace.getByName(state.name).report(state.takeReport());
        state.adoptView(view, now());
      }),
    );
    this.reports += news.length;
    this.lastReportAt = now();
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    this.lastError = failed
      ? {
          at: now(),
          message: `reporting to a Service's Durable Object failed: ${String(failed.reason)}`,
        }
      : undefined;
  }

  view(): SyncView {
    return {
      reports: this.reports,
      lastReportAt: this.lastReportAt ? new Date(this.lastReportAt).toISOString() : null,
      lastError: this.lastError
        ? { at: new Date(this.lastError.at).toISOString(), message: this.lastError.message }
        : null,
    };
  }
}
