/**
 * What this isolate tells the backends' Durable Objects, and what it learns back: the outcomes
 * its breakers recorded since the last report, batched per backend, sent through `waitUntil` at
 * most once a second and only when there is news; the answer — each backend's mesh-wide breaker
 * state — is adopted into the local breakers. A request never waits for any of it.
 *
 * If an object cannot be reached, the isolate keeps its own state (it still trips on what it
 * sees) and `/.mesh/status` says so; nothing waits or retries in a loop.
 */
import type { BreakerPolicy, Outcomes } from "../../core/resilience/breaker.ts";
import type { Breakers } from "./breakers.ts";

/** The Durable Object namespace of backend state, as the router binds it. */
export interface BackendStateNamespace {
  getByName(name: string): {
    report(report: {
      breaker?: { policy: BreakerPolicy; outcomes: Outcomes };
    }): Promise<{ breaker: Parameters<Breakers["adopt"]>[1] | undefined; at: number }>;
  };
}

/** At most one report per isolate per this interval. */
export const FLUSH_INTERVAL_MS = 1000;
/** Reports one `waitUntil` makes at most, before the next outcome schedules anew. */
const MAX_ROUNDS = 5;

interface Pending {
  policy: BreakerPolicy;
  successes: number;
  failures: number;
  trailingFailures: number;
}

/** What `/.mesh/status` shows of the sync. */
export interface SyncView {
  reports: number;
  lastReportAt: string | null;
  lastError: { at: string; message: string } | null;
}

export class BackendSync {
  private readonly pending = new Map<string, Pending>();
  private scheduled = false;
  private lastFlush = 0;
  private reports = 0;
  private lastReportAt = 0;
  private lastError: { at: number; message: string } | undefined;

  /** Adds one try's outcome for `service` to the next report. */
  note(service: string, policy: BreakerPolicy, outcomes: Outcomes): void {
    const p = this.pending.get(service);
    if (!p) {
      this.pending.set(service, { policy, ...outcomes });
      return;
    }
    p.policy = policy;
    p.successes += outcomes.successes;
    p.failures += outcomes.failures;
    // A success ends the streak: only failures after the last success still trail.
    p.trailingFailures =
      outcomes.successes > 0
        ? outcomes.trailingFailures
        : p.trailingFailures + outcomes.trailingFailures;
  }

  /**
   * Makes sure the pending news goes out: schedules one report, through `waitUntil`, for when the
   * interval since the last one has passed.
   */
  schedule(
    namespace: BackendStateNamespace | undefined,
    breakers: Breakers,
    now: () => number,
    waitUntil: (promise: Promise<unknown>) => void,
  ): void {
    if (!namespace || this.scheduled || this.pending.size === 0) return;
    this.scheduled = true;
    waitUntil(this.drain(namespace, breakers, now).finally(() => (this.scheduled = false)));
  }

  /**
   * Reports, a second apart, for as long as news keeps arriving (outcomes recorded while a report
   * was in flight go in the next one) — a few rounds at most in one `waitUntil`; after that the
   * next outcome schedules again.
   */
  private async drain(
    namespace: BackendStateNamespace,
    breakers: Breakers,
    now: () => number,
  ): Promise<void> {
    for (let round = 0; round < MAX_ROUNDS && this.pending.size > 0; round++) {
      const delay = Math.max(0, this.lastFlush + FLUSH_INTERVAL_MS - now());
      if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
      await this.flush(namespace, breakers, now);
    }
  }

  private async flush(
    namespace: BackendStateNamespace,
    breakers: Breakers,
    now: () => number,
  ): Promise<void> {
    const batch = [...this.pending];
    this.pending.clear();
    this.lastFlush = now();
    const results = await Promise.allSettled(
      batch.map(async ([service, p]) => {
        const { policy, ...outcomes } = p;
        const view = await namespace.getByName(service).report({ breaker: { policy, outcomes } });
        if (view.breaker) breakers.adopt(service, view.breaker, now());
      }),
    );
    this.reports += batch.length;
    this.lastReportAt = now();
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    this.lastError = failed
      ? {
          at: now(),
          message: `reporting to a backend's Durable Object failed: ${String(failed.reason)}`,
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
