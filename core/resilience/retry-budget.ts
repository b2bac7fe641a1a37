/**
 * A retry budget, Linkerd's model: over a sliding window, retries may add at most `ratio` of the
 * original requests, plus a floor of `minPerSecond` so a quiet service can still retry. It is what
 * keeps a mesh from multiplying a failing backend's load: under a total outage, a mesh that
 * receives R requests sends at most R × (1 + ratio) + minPerSecond × window seconds.
 *
 * The window is a ring of buckets (a sliding window in steps of window/buckets), so counting is
 * O(1) and the state is small and serialisable. Counts from other isolates, handed back by the
 * destination's Durable Object, are added as a separate remote share that expires with the
 * window, so each isolate spends only what the whole mesh has left.
 */

export interface RetryBudgetPolicy {
  /** Retries allowed per original request over the window (Linkerd's default 0.2). */
  readonly ratio: number;
  /** Retries allowed per second regardless of traffic (Linkerd's default 10). */
  readonly minPerSecond: number;
  /** The sliding window, in milliseconds (Linkerd's default 10 s). */
  readonly windowMs: number;
}

const BUCKETS = 10;

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
  private readonly policy: RetryBudgetPolicy;
  private readonly bucketMs: number;
  private readonly requests = new Array<number>(BUCKETS).fill(0);
  private readonly retries = new Array<number>(BUCKETS).fill(0);
  /** Start time of the newest bucket. */
  private head = 0;
  private remote: RemoteShare = { requests: 0, retries: 0, until: 0 };

  constructor(policy: RetryBudgetPolicy, now: number) {
    this.policy = policy;
    this.bucketMs = Math.max(1, policy.windowMs / BUCKETS);
    this.head = now - (now % this.bucketMs);
  }

  /** Moves the window to `now`, clearing buckets that fell out of it. */
  private advance(now: number): number {
    const steps = Math.floor((now - this.head) / this.bucketMs);
    if (steps > 0) {
      for (let i = 1; i <= Math.min(steps, BUCKETS); i++) {
        const slot = this.slot(this.head + i * this.bucketMs);
        this.requests[slot] = 0;
        this.retries[slot] = 0;
      }
      this.head += steps * this.bucketMs;
    }
    return this.slot(this.head);
  }

  private slot(at: number): number {
    return Math.floor(at / this.bucketMs) % BUCKETS;
  }

  private sum(counts: readonly number[]): number {
    let total = 0;
    for (const n of counts) total += n;
    return total;
  }

  /** An original request (not a retry) went out: it earns `ratio` of a retry. */
  deposit(now: number): void {
    this.requests[this.advance(now)]! += 1;
  }

  /** Takes one retry from the budget if it has one; false when the budget is spent. */
  tryWithdraw(now: number): boolean {
    const slot = this.advance(now);
    const counts = this.counts(now);
    if (counts.retries + 1 > this.allowance(counts.requests)) return false;
    this.retries[slot]! += 1;
    return true;
  }

  /** Retries the window allows for `requests` original requests. */
  private allowance(requests: number): number {
    return this.policy.ratio * requests + (this.policy.minPerSecond * this.policy.windowMs) / 1000;
  }

  /** This isolate's own counts over the window (what it reports to the Durable Object). */
  localCounts(now: number): BudgetCounts {
    this.advance(now);
    return { requests: this.sum(this.requests), retries: this.sum(this.retries) };
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
