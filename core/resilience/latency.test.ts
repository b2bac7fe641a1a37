import { describe, expect, it } from "vitest";
import { seededRandom } from "../random.ts";
import {
  autoTimeout,
  bucketOf,
  emptyCounts,
  LATENCY_BOUNDS_MS,
  mergeCounts,
  quantile,
  RollingLatency,
} from "./latency.ts";

function countsOf(samples: readonly number[]) {
  const counts = emptyCounts();
  for (const ms of samples) counts[bucketOf(ms)]! += 1;
  return counts;
}

function exactQuantile(samples: readonly number[], q: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
}

describe("latency histogram", () => {
  it("puts each latency in the first bucket whose bound holds it", () => {
    expect(bucketOf(0)).toBe(0);
    expect(bucketOf(1)).toBe(0);
    expect(bucketOf(1.01)).toBe(1);
    expect(LATENCY_BOUNDS_MS[bucketOf(250)]).toBeGreaterThanOrEqual(250);
    expect(bucketOf(1e9)).toBe(LATENCY_BOUNDS_MS.length); // the overflow bucket
  });

  it("reads quantiles within one bucket of the exact value", () => {
    const random = seededRandom(11);
    // A long-tailed latency: mostly 5–40 ms, a tail to 2 s.
    const samples = Array.from({ length: 5000 }, () =>
      random() < 0.95 ? 5 + random() * 35 : 40 + random() ** 3 * 2000,
    );
    const counts = countsOf(samples);
    for (const q of [0.5, 0.9, 0.95, 0.99, 0.999]) {
      const exact = exactQuantile(samples, q);
      const read = quantile(counts, q)!;
      expect(read, `q=${q}`).toBeGreaterThanOrEqual(exact);
      expect(read / exact, `q=${q}`).toBeLessThanOrEqual(1.26);
    }
  });

  it("adds up across isolates: merged counts give the quantile of all samples", () => {
    const a = [10, 20, 30, 40, 50];
    const b = [100, 200, 300, 400, 500];
    const merged = countsOf(a);
    mergeCounts(merged, countsOf(b));
    expect(merged).toEqual(countsOf([...a, ...b]));
    expect(quantile(merged, 0.9)).toBe(quantile(countsOf([...a, ...b]), 0.9));
  });

  it("ages out old behaviour over a rolling window", () => {
    const rolling = new RollingLatency(10_000, 0);
    for (let i = 0; i < 100; i++) rolling.record(1000, 0);
    expect(quantile(rolling.counts(5_000), 0.5)).toBeGreaterThanOrEqual(1000);
    for (let i = 0; i < 100; i++) rolling.record(10, 12_000);
    // 12 s: the slow window is the previous one, still counted.
    expect(quantile(rolling.counts(12_000), 0.99)).toBeGreaterThanOrEqual(1000);
    // 25 s: it has aged out entirely.
    expect(quantile(rolling.counts(25_000), 0.99)).toBeLessThan(20);
  });
});

describe("auto per-try timeout", () => {
  const policy = { quantile: 0.99, factor: 2, minMs: 50, maxMs: 5_000, minSamples: 100 };

  it("is a high quantile times the factor, within the minimum and maximum", () => {
    const counts = countsOf(Array.from({ length: 1000 }, (_, i) => (i < 990 ? 40 : 300)));
    const p99 = quantile(counts, 0.99)!;
    expect(autoTimeout(counts, policy)).toBe(Math.ceil(p99 * 2));
    expect(autoTimeout(countsOf(Array(1000).fill(1)), policy)).toBe(50);
    expect(autoTimeout(countsOf(Array(1000).fill(60_000)), policy)).toBe(5_000);
  });

  it("falls back to the maximum until it has enough samples", () => {
    expect(autoTimeout(countsOf(Array(99).fill(10)), policy)).toBe(5_000);
  });
});
