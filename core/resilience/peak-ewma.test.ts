import { describe, expect, it } from "vitest";
import { seededRandom } from "../random.ts";
import { cost, newLoad, observe, pickP2C } from "./peak-ewma.ts";

describe("peak-EWMA with power of two choices", () => {
  it("rises to a slow answer at once and decays back over time", () => {
    const load = newLoad(10, 0);
    observe(load, 500, 0, 10_000);
    expect(load.ewmaMs).toBe(500);
    observe(load, 10, 10_000, 10_000); // one decay period: e^-1 of the old value remains
    expect(load.ewmaMs).toBeCloseTo(500 * Math.exp(-1) + 10 * (1 - Math.exp(-1)), 5);
  });

  it("weighs calls in flight", () => {
    const load = newLoad(20, 0);
    load.pending = 3;
    expect(cost(load)).toBe(80);
  });

  it("sends most calls to the fast endpoint, some to the slow (it is still sampled)", () => {
    const loads = [newLoad(5, 0), newLoad(50, 0), newLoad(5, 0)];
    const random = seededRandom(5);
    const picks = [0, 0, 0];
    for (let i = 0; i < 3000; i++) picks[pickP2C(loads, random)]! += 1;
    // The slow one wins only when drawn against itself, which P2C never does: never picked.
    expect(picks[1]).toBe(0);
    expect(picks[0]! + picks[2]!).toBe(3000);
    expect(Math.abs(picks[0]! - picks[2]!)).toBeLessThan(300);
  });

  it("never picks an ineligible (ejected) endpoint, and answers −1 when none is left", () => {
    const loads = [newLoad(5, 0), newLoad(5, 0)];
    const random = seededRandom(1);
    for (let i = 0; i < 100; i++) expect(pickP2C(loads, random, (j) => j === 1)).toBe(1);
    expect(pickP2C(loads, random, () => false)).toBe(-1);
  });
});
