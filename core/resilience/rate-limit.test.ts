import { describe, expect, it } from "vitest";
import { RATE_WINDOW_MS, SharedRateLimit } from "./rate-limit.ts";
import { SlidingCounter } from "./window.ts";

describe("shared rate limit", () => {
  it("alone, lets a burst through and then the rate, and says when the next call may go", () => {
    const limit = new SharedRateLimit({ ratePerSecond: 10, burst: 5 }, 0);
    let admitted = 0;
    for (let i = 0; i < 20; i++) if (limit.tryTake(0)) admitted++;
    expect(admitted).toBe(5);
    expect(limit.waitMs(0)).toBe(100);
    // One second later: ten more tokens, but the bucket holds five.
    admitted = 0;
    for (let i = 0; i < 20; i++) if (limit.tryTake(1000)) admitted++;
    expect(admitted).toBe(5);
  });

  it("across isolates, holds the mesh-wide limit within a few percent once they have reported", () => {
    const policy = { ratePerSecond: 100, burst: 100 };
    const isolates = [new SharedRateLimit(policy, 0), new SharedRateLimit(policy, 0)];
    const load = [300, 100]; // calls a second each isolate receives
    const object = new SlidingCounter(RATE_WINDOW_MS, 0); // the Durable Object's demand count
    let admittedLate = 0;
    for (let ms = 0; ms < 20_000; ms += 10) {
      isolates.forEach((limit, i) => {
        for (let n = 0; n < load[i]! / 100; n++) {
          if (limit.tryTake(ms) && ms >= 10_000) admittedLate++;
        }
      });
      // Each isolate reports about once a second (out of step) and adopts the answer.
      isolates.forEach((limit, i) => {
        if ((ms + i * 500) % 1000 === 0) {
          object.add(limit.takeUnreported(), ms);
          limit.adoptMesh(object.total(ms), ms);
        }
      });
    }
    // The last 10 s: 100 a second mesh-wide is 1000.
    expect(admittedLate).toBeGreaterThan(900);
    expect(admittedLate).toBeLessThan(1100);
    // Shares follow demand: about three to one.
    expect(isolates[0]!.currentShare()).toBeGreaterThan(0.6);
    expect(isolates[0]!.currentShare()).toBeLessThan(0.85);
  });

  it("takes the whole limit again when the mesh has not answered for two windows", () => {
    const limit = new SharedRateLimit({ ratePerSecond: 10, burst: 10 }, 0);
    for (let i = 0; i < 10; i++) limit.tryTake(0);
    limit.adoptMesh(100, 0); // a tenth of the demand: a tenth of the limit
    expect(limit.currentShare()).toBeCloseTo(0.1);
    limit.tryTake(2 * RATE_WINDOW_MS);
    expect(limit.currentShare()).toBe(1);
  });
});
