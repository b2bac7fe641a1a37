import { describe, expect, it } from "vitest";
import { seededRandom } from "../random.ts";
import { backoffDelay, retryAfterMs, retryDelay } from "./backoff.ts";

const policy = { baseMs: 25, maxMs: 1000, minMs: 0 };

describe("backoff with full jitter", () => {
  it("stays within [0, min(max, base × 2^retry)) for every retry", () => {
    const random = seededRandom(1);
    for (let retry = 0; retry < 12; retry++) {
      const bound = Math.min(1000, 25 * 2 ** retry);
      for (let i = 0; i < 200; i++) {
        const wait = backoffDelay(policy, retry, random);
        expect(wait).toBeGreaterThanOrEqual(0);
        expect(wait).toBeLessThan(bound);
      }
    }
  });

  it("doubles the bound each retry until the cap (random fixed at the top)", () => {
    const top = () => 0.999999;
    expect([0, 1, 2, 3, 6, 7, 40].map((retry) => backoffDelay(policy, retry, top))).toEqual([
      24, 49, 99, 199, 999, 999, 999,
    ]);
  });

  it("spreads retries over the whole range (full jitter, not a fixed step)", () => {
    const random = seededRandom(7);
    const waits = Array.from({ length: 2000 }, () => backoffDelay(policy, 3, random));
    const mean = waits.reduce((a, b) => a + b, 0) / waits.length;
    expect(mean).toBeGreaterThan(90); // uniform on [0, 200): mean 100
    expect(mean).toBeLessThan(110);
    expect(Math.min(...waits)).toBeLessThan(10);
    expect(Math.max(...waits)).toBeGreaterThan(190);
  });
});

describe("backoff with a floor (the Gateway API's retry.backoff is the shortest wait)", () => {
  const floored = { baseMs: 100, maxMs: 1000, minMs: 100 };

  it("never waits less than the floor, and jitters above it", () => {
    const random = seededRandom(3);
    for (let retry = 0; retry < 8; retry++) {
      const waits = Array.from({ length: 300 }, () => backoffDelay(floored, retry, random));
      expect(Math.min(...waits), `retry ${retry}`).toBeGreaterThanOrEqual(100);
      expect(Math.max(...waits), `retry ${retry}`).toBeLessThanOrEqual(1000);
      expect(new Set(waits).size, `retry ${retry}`).toBeGreaterThan(50);
    }
  });

  it("is the floor with the jitter at its bottom, and reaches the cap at its top", () => {
    expect(backoffDelay(floored, 0, () => 0)).toBe(100);
    expect(backoffDelay(floored, 0, () => 0.999999)).toBe(199);
    expect(backoffDelay(floored, 5, () => 0.999999)).toBe(1000);
  });
});

describe("Retry-After", () => {
  const now = Date.parse("2026-11-26T12:00:00Z");

  it("reads delay-seconds and HTTP dates; a past date is 0; anything else is ignored", () => {
    expect(retryAfterMs("3", now)).toBe(3000);
    expect(retryAfterMs(" 0 ", now)).toBe(0);
    expect(retryAfterMs("Thu, 26 Nov 2026 12:00:05 GMT", now)).toBe(5000);
    expect(retryAfterMs("Thu, 26 Nov 2026 11:00:00 GMT", now)).toBe(0);
    expect(retryAfterMs("-1", now)).toBeUndefined();
    expect(retryAfterMs("soon", now)).toBeUndefined();
    expect(retryAfterMs("1.5", now)).toBeUndefined();
    expect(retryAfterMs(null, now)).toBeUndefined();
  });

  it("is honoured up to the cap; beyond it the retry is not made", () => {
    const capped = { ...policy, retryAfterCapMs: 2000 };
    const half = () => 0.5;
    expect(retryDelay(capped, 0, 1500, half)).toBe(1500);
    expect(retryDelay(capped, 0, 2500, half)).toBeUndefined();
    expect(retryDelay(capped, 2, undefined, half)).toBe(50);
  });
});
