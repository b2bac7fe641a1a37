/**
 * What a backend's latency looks like, in a form that adds up across isolates: a histogram over
 * fixed, geometric buckets (each bound about 1.26× the one before, from 1 ms to about 2 minutes),
 * so an isolate's counts and the Durable Object's mesh-wide sum are the same shape and a
 * quantile read from them is within one bucket (about 26%) of the exact value.
 *
 * `auto` per-try timeouts come from it: a high quantile times a factor, clamped to a minimum and
 * a maximum, learned over a rolling window so the timeout follows the backend as it changes.
 */

/** Upper bounds of the buckets, in milliseconds; a last bucket catches everything above. */
export const LATENCY_BOUNDS_MS: readonly number[] = Array.from(
  { length: 52 },
  (_, i) => Math.round(10 ** (i / 10) * 100) / 100,
);

/** The bucket a latency falls in. */
export function bucketOf(ms: number): number {
  // Binary search over the bounds: the first bound ≥ ms.
  let low = 0;
  let high = LATENCY_BOUNDS_MS.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (ms <= LATENCY_BOUNDS_MS[mid]!) high = mid;
    else low = mid + 1;
  }
  return low;
}

/** Counts per bucket (LATENCY_BOUNDS_MS.length + 1 of them). */
export type LatencyCounts = number[];

export function emptyCounts(): LatencyCounts {
  return new Array<number>(LATENCY_BOUNDS_MS.length + 1).fill(0);
}

/** Adds `other` into `into` (the Durable Object's merge of isolates' reports). */
export function mergeCounts(into: LatencyCounts, other: readonly number[]): void {
  for (let i = 0; i < into.length; i++) into[i]! += other[i] ?? 0;
}

export function totalOf(counts: readonly number[]): number {
  let total = 0;
  for (const n of counts) total += n;
  return total;
}

/**
 * Counts as `[bucket, count]` pairs, the empty buckets left out (what reports carry; plain
 * arrays, as they cross a Durable Object call).
 */
export type SparseCounts = number[][];

export function toSparse(counts: readonly number[]): SparseCounts {
  const out: SparseCounts = [];
  counts.forEach((n, i) => {
    if (n > 0) out.push([i, n]);
  });
  return out;
}

/** Adds sparse counts into `into`, ignoring pairs that name no bucket. */
export function addSparse(into: LatencyCounts, sparse: readonly (readonly number[])[]): void {
  for (const [i, n] of sparse) {
    if (i === undefined || n === undefined) continue;
    if (Number.isInteger(i) && i >= 0 && i < into.length && Number.isFinite(n) && n > 0) {
      into[i]! += n;
    }
  }
}

/** How far back a backend's latency is remembered: between one and two of these. */
export const LATENCY_WINDOW_MS = 60_000;

/**
 * The `q` quantile (0–1) of the counts, as the upper bound of the bucket it falls in (the last
 * bucket, unbounded, reports the largest bound); undefined with no samples.
 */
export function quantile(counts: readonly number[], q: number): number | undefined {
  const total = totalOf(counts);
  if (total === 0) return undefined;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i]!;
    if (seen >= rank) return LATENCY_BOUNDS_MS[Math.min(i, LATENCY_BOUNDS_MS.length - 1)]!;
  }
  return LATENCY_BOUNDS_MS.at(-1);
}

/**
 * Latency over a rolling window: the current and the previous window's counts, so a reading
 * always covers between one and two windows and old behaviour ages out.
 */
export class RollingLatency {
  private current = emptyCounts();
  private previous = emptyCounts();
  private started: number;
  private readonly windowMs: number;

  constructor(windowMs: number, now: number) {
    this.windowMs = windowMs;
    this.started = now;
  }

  private rotate(now: number): void {
    if (now - this.started < this.windowMs) return;
    this.previous = now - this.started < 2 * this.windowMs ? this.current : emptyCounts();
    this.current = emptyCounts();
    this.started = now - ((now - this.started) % this.windowMs);
  }

  record(ms: number, now: number): void {
    this.rotate(now);
    this.current[bucketOf(ms)]! += 1;
  }

  /** Adds a batch of counts (an isolate's report, in the Durable Object). */
  recordCounts(sparse: readonly (readonly number[])[], now: number): void {
    this.rotate(now);
    addSparse(this.current, sparse);
  }

  /** The counts over the last one to two windows. */
  counts(now: number): LatencyCounts {
    this.rotate(now);
    const out = this.current.slice();
    mergeCounts(out, this.previous);
    return out;
  }
}

export interface AutoTimeoutPolicy {
  /** Which latency quantile to base the timeout on (for example 0.99). */
  readonly quantile: number;
  /** Multiplier on that quantile. */
  readonly factor: number;
  readonly minMs: number;
  readonly maxMs: number;
  /** Below this many samples the estimate is not trusted and the timeout is `maxMs`. */
  readonly minSamples: number;
}

/** The per-try timeout `auto` gives for these latency counts. */
export function autoTimeout(counts: readonly number[], policy: AutoTimeoutPolicy): number {
  if (totalOf(counts) < policy.minSamples) return policy.maxMs;
  const q = quantile(counts, policy.quantile) ?? policy.maxMs;
  return Math.min(policy.maxMs, Math.max(policy.minMs, Math.ceil(q * policy.factor)));
}
