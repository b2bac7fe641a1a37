/**
 * A count over a sliding window, in steps: a ring of buckets, each covering window/buckets, so
 * adding and reading are O(buckets) at worst and the state is a few numbers. What the retry
 * budget, the rate limits and the backends' Durable Objects count with.
 */

export class SlidingCounter {
  readonly windowMs: number;
  private readonly bucketMs: number;
  private readonly counts: number[];
  /** Start time of the newest bucket. */
  private head: number;

  constructor(windowMs: number, now: number, buckets = 10) {
    this.windowMs = windowMs;
    this.bucketMs = Math.max(1, windowMs / buckets);
    this.counts = new Array<number>(buckets).fill(0);
    this.head = now - (now % this.bucketMs);
  }

  private slot(at: number): number {
    return Math.floor(at / this.bucketMs) % this.counts.length;
  }

  /** Moves the window to `now`, clearing buckets that fell out of it; the current bucket's slot. */
  private advance(now: number): number {
    const steps = Math.floor((now - this.head) / this.bucketMs);
    if (steps > 0) {
      for (let i = 1; i <= Math.min(steps, this.counts.length); i++) {
        this.counts[this.slot(this.head + i * this.bucketMs)] = 0;
      }
      this.head += steps * this.bucketMs;
    }
    return this.slot(this.head);
  }

  add(n: number, now: number): void {
    this.counts[this.advance(now)]! += n;
  }

  /** The count over the window ending at `now`. */
  total(now: number): number {
    this.advance(now);
    let sum = 0;
    for (const n of this.counts) sum += n;
    return sum;
  }
}
