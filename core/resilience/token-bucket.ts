/**
 * A token bucket: `ratePerSecond` tokens a second up to `burst`, one per call. The local half of
 * a rate limit — an isolate decides at once, with no I/O — and the arithmetic behind the
 * `Retry-After` a refused call gets (when the next token will be there).
 */

const EPSILON = 1e-9;

export interface TokenBucketPolicy {
  /** Calls per second, sustained. */
  readonly ratePerSecond: number;
  /** Calls allowed at once after a quiet spell (the bucket's size). */
  readonly burst: number;
}

export class TokenBucket {
  private policy: TokenBucketPolicy;
  private tokens: number;
  private updated: number;

  constructor(policy: TokenBucketPolicy, now: number) {
    this.policy = policy;
    this.tokens = policy.burst;
    this.updated = now;
  }

  private refill(now: number): void {
    if (now <= this.updated) return;
    const earned = ((now - this.updated) / 1000) * this.policy.ratePerSecond;
    this.tokens = Math.min(this.policy.burst, this.tokens + earned);
    this.updated = now;
  }

  /** Changes the rate and size from `now` on (tokens already earned stay, up to the new size). */
  reshape(policy: TokenBucketPolicy, now: number): void {
    this.refill(now);
    this.policy = policy;
    this.tokens = Math.min(policy.burst, this.tokens);
  }

  /** Takes a token if one is there. */
  tryTake(now: number): boolean {
    this.refill(now);
    // Tolerate float drift: 0.1 added ten times is 0.9999999999999999.
    if (this.tokens < 1 - EPSILON) return false;
    this.tokens -= 1;
    return true;
  }

  /** Returns a token taken for a call that did not go after all (up to the bucket's size). */
  giveBack(now: number): void {
    this.refill(now);
    this.tokens = Math.min(this.policy.burst, this.tokens + 1);
  }

  /** Milliseconds until a token will be there (0 when one is). */
  waitMs(now: number): number {
    this.refill(now);
    if (this.tokens >= 1 - EPSILON) return 0;
    if (this.policy.ratePerSecond <= 0) return Infinity;
    return Math.ceil(((1 - this.tokens) / this.policy.ratePerSecond) * 1000);
  }
}
