import { describe, expect, it } from "vitest";
import { TokenBucket } from "./token-bucket.ts";

describe("token bucket", () => {
  it("allows the burst at once, then the rate", () => {
    const bucket = new TokenBucket({ ratePerSecond: 10, burst: 5 }, 0);
    const first = Array.from({ length: 7 }, () => bucket.tryTake(0));
    expect(first).toEqual([true, true, true, true, true, false, false]);
    expect(bucket.tryTake(99)).toBe(false); // 0.99 of a token
    expect(bucket.tryTake(100)).toBe(true);
    // Over 10 s at 10/s: 100 calls, not more.
    let allowed = 0;
    for (let t = 100; t <= 10_100; t += 10) if (bucket.tryTake(t)) allowed++;
    expect(allowed).toBe(100);
  });

  it("says how long until the next token (the Retry-After of a refusal)", () => {
    const bucket = new TokenBucket({ ratePerSecond: 2, burst: 1 }, 0);
    expect(bucket.waitMs(0)).toBe(0);
    bucket.tryTake(0);
    expect(bucket.waitMs(0)).toBe(500);
    expect(bucket.waitMs(400)).toBe(100);
  });

  it("never holds more than the burst after a long quiet spell", () => {
    const bucket = new TokenBucket({ ratePerSecond: 100, burst: 3 }, 0);
    let allowed = 0;
    while (bucket.tryTake(3_600_000)) allowed++;
    expect(allowed).toBe(3);
  });
});
