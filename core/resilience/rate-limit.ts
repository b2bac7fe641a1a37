/**
 * A rate limit enforced across the mesh without a call on the hot path. Each isolate decides at
 * once with a local token bucket; the bucket's rate is the isolate's share of the mesh-wide
 * limit, in proportion to the calls it sees: the isolate reports its demand (calls that asked,
 * let through or not) to the Service's Durable Object about once a second, the object answers
 * the mesh-wide demand over the last few seconds, and the isolate takes
 * `limit × its demand / mesh demand`. With steady traffic the isolates' rates add up to the
 * limit; the error is what changed within one report (about a second) — an isolate that has
 * heard nothing yet, or nothing for two windows, allows the whole limit on its own.
 */
import { TokenBucket, type TokenBucketPolicy } from "./token-bucket.ts";
import { SlidingCounter } from "./window.ts";

/** The window demand is counted over, here and in the Durable Object. */
export const RATE_WINDOW_MS = 5000;

export class SharedRateLimit {
  readonly policy: TokenBucketPolicy;
  private readonly bucket: TokenBucket;
  private readonly demand: SlidingCounter;
  /** Demand since the last report. */
  private unreported = 0;
  private share = 1;
  /** Until when the share from the mesh holds; after that the isolate takes the whole limit. */
  private shareUntil = 0;

  constructor(policy: TokenBucketPolicy, now: number) {
    this.policy = policy;
    this.bucket = new TokenBucket(policy, now);
    this.demand = new SlidingCounter(RATE_WINDOW_MS, now);
  }

  /** One call asks to go: counts it, and lets it through if this isolate's share has a token. */
  tryTake(now: number): boolean {
    this.demand.add(1, now);
    this.unreported += 1;
    if (this.share < 1 && now >= this.shareUntil) this.setShare(1, now);
    return this.bucket.tryTake(now);
  }

  /**
   * How long until a call would be let through (for `Retry-After`): until this isolate's bucket
   * has a token, but no longer than the whole limit takes to earn one (at least a second) — a
   * small share makes this isolate's bucket slow, not the mesh's.
   */
  waitMs(now: number): number {
    const meshWide = Math.max(1000, 1000 / this.policy.ratePerSecond);
    return Math.min(this.bucket.waitMs(now), meshWide);
  }

  /** Gives back the token of a call a later limit refused (its demand still counts). */
  giveBack(now: number): void {
    this.bucket.giveBack(now);
  }

  /** Demand since the last report, for the next one (and counted as reported). */
  takeUnreported(): number {
    const n = this.unreported;
    this.unreported = 0;
    return n;
  }

  /** Takes the mesh-wide demand over the window (this isolate's included) and sets the share. */
  adoptMesh(meshDemand: number, now: number): void {
    const own = this.demand.total(now);
    this.setShare(own === 0 ? 1 : own / Math.max(own, meshDemand), now);
    this.shareUntil = now + 2 * RATE_WINDOW_MS;
  }

  /** This isolate's share of the limit (1 until the mesh says otherwise). */
  currentShare(): number {
    return this.share;
  }

  private setShare(share: number, now: number): void {
    this.share = share;
    this.bucket.reshape(
      {
        ratePerSecond: this.policy.ratePerSecond * share,
        burst: Math.max(1, this.policy.burst * share),
      },
      now,
    );
  }
}
