/**
 * A retry budget, Linkerd's model: over a sliding window, retries may add at most `ratio` of the
 * original requests, plus a floor of `minPerSecond` so a quiet service can still retry. It is what
 * keeps a mesh from multiplying a failing backend's load: under a total outage, a mesh that
 * receives R requests sends at most R × (1 + ratio) + minPerSecond × window seconds.
 *
 * The window slides in steps (core/resilience/window.ts), so counting is cheap and the state
 * small. Counts from other isolates, handed back by the backend's Durable Object, are added as a
 * separate remote share that expires with the window, so each isolate spends only what the whole
 * mesh has left.
 */

import { SlidingCounter } from "./window.ts";

export interface RetryBudgetPolicy {
  /** Retries allowed per original request over the window (Linkerd's default 0.2). */
  readonly ratio: number;
  /** Retries allowed per second regardless of traffic (Linkerd's default 10). */
  readonly minPerSecond: number;
  /** The sliding window, in milliseconds (Linkerd's default 10 s). */
  readonly windowMs: number;
}

/** Requests and retries the rest of the mesh reported, valid until `until`. */
interface RemoteShare {
  requests: number;
  retries: number;
  until: number;
}

/** Window totals. */
export interface BudgetCounts {
  requests: number;
  retries: number;
}

export class RetryBudget {
  readonly policy: RetryBudgetPolicy;
  private readonly requests: SlidingCounter;
  private readonly retries: SlidingCounter;
  private remote: RemoteShare = { requests: 0, retries: 0, until: 0 };

  constructor(policy: RetryBudgetPolicy, now: number) {
    this.policy = policy;
    this.requests = new SlidingCounter(policy.windowMs, now);
    this.retries = new SlidingCounter(policy.windowMs, now);
  }

  /** An original request (not a retry) went out: it earns `ratio` of a retry. */
  deposit(now: number): void {
    this.requests.add(1, now);
  }

  /** Takes one retry from the budget if it has one; false when the budget is spent. */
  tryWithdraw(now: number): boolean {
    const counts = this.counts(now);
    if (counts.retries + 1 > this.allowance(counts.requests)) return false;
    this.retries.add(1, now);
    return true;
  }

  /** Retries the window allows for `requests` original requests. */
  private allowance(requests: number): number {
    return this.policy.ratio * requests + (this.policy.minPerSecond * this.policy.windowMs) / 1000;
  }

  /** This isolate's own counts over the window (what it reports to the Durable Object). */
  localCounts(now: number): BudgetCounts {
    return { requests: this.requests.total(now), retries: this.retries.total(now) };
  }

  /** The mesh-wide counts this isolate knows of: its own plus the remote share, if current. */
  counts(now: number): BudgetCounts {
    const local = this.localCounts(now);
    if (now >= this.remote.until) return local;
    return {
      requests: local.requests + this.remote.requests,
      retries: local.retries + this.remote.retries,
    };
  }

  /**
   * Adopts what the rest of the mesh did over the window (the Durable Object's totals minus this
   * isolate's own report), valid for one window.
   */
  adoptRemote(remote: BudgetCounts, now: number): void {
    this.remote = {
      requests: Math.max(0, remote.requests),
      retries: Math.max(0, remote.retries),
      until: now + this.policy.windowMs,
    };
  }
}
