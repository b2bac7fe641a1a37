import { describe, expect, it } from "vitest";
import { ejectionCap, ejectOutliers, type SplitEntry } from "./ejection.ts";

const healthy = (backend: string, weight = 1): SplitEntry<string> => ({
  backend,
  weight,
  openUntil: undefined,
});
const open = (backend: string, until: number, weight = 1): SplitEntry<string> => ({
  backend,
  weight,
  openUntil: until,
});
const all = { maxEjectionPercent: 100, failOpen: false };

describe("outlier ejection", () => {
  it("caps ejections at the percentage, rounded down, but at least one; 0 turns it off", () => {
    expect([1, 2, 3, 4, 10].map((n) => ejectionCap(n, 50))).toEqual([1, 1, 1, 2, 5]);
    expect([1, 3, 7].map((n) => ejectionCap(n, 100))).toEqual([1, 3, 7]);
    expect(ejectionCap(10, 9)).toBe(1);
    expect(ejectionCap(10, 0)).toBe(0);
  });

  it("takes an open backend out of the split; its weight goes to the others", () => {
    const result = ejectOutliers([healthy("a", 90), open("b", 5_000, 10)], all);
    expect(result).toEqual({ kind: "split", kept: ["a"], ejected: ["b"], bypass: [] });
  });

  it("ejects the longest open first, and keeps those beyond the cap in, past their breakers", () => {
    const entries = [open("a", 1_000), open("b", 9_000), open("c", 5_000), healthy("d")];
    const result = ejectOutliers(entries, { maxEjectionPercent: 50, failOpen: false });
    expect(result).toEqual({ kind: "split", kept: ["a", "d"], ejected: ["b", "c"], bypass: ["a"] });
  });

  it("with a cap below the open count and nothing healthy, still calls the rest (the cap holds)", () => {
    const result = ejectOutliers([open("a", 2_000), open("b", 3_000), open("c", 1_000)], {
      maxEjectionPercent: 34, // 1 of 3
      failOpen: false,
    });
    expect(result).toEqual({ kind: "split", kept: ["a", "c"], ejected: ["b"], bypass: ["a", "c"] });
  });

  it("answers none-healthy when every backend is open, or with fail-open the one reopening first", () => {
    const entries = [open("a", 7_000), open("b", 2_000), open("c", 4_000)];
    expect(ejectOutliers(entries, all)).toEqual({
      kind: "none-healthy",
      ejected: ["a", "c", "b"],
    });
    expect(ejectOutliers(entries, { maxEjectionPercent: 100, failOpen: true })).toEqual({
      kind: "fail-open",
      backend: "b",
      ejected: ["a", "c"],
    });
  });

  it("ejects nothing from a split of one weighted backend (its breaker answers) or with the cap at 0", () => {
    expect(ejectOutliers([open("a", 9_000), healthy("z", 0)], all)).toEqual({
      kind: "split",
      kept: ["a", "z"],
      ejected: [],
      bypass: [],
    });
    expect(
      ejectOutliers([open("a", 9_000), healthy("b")], { ...all, maxEjectionPercent: 0 }),
    ).toEqual({ kind: "split", kept: ["a", "b"], ejected: [], bypass: ["a"] });
  });

  it("never ejects a weight-0 backend nor counts it toward the cap", () => {
    const result = ejectOutliers([open("zero", 9_000, 0), open("a", 5_000), healthy("b")], {
      maxEjectionPercent: 50,
      failOpen: false,
    });
    expect(result).toEqual({ kind: "split", kept: ["zero", "b"], ejected: ["a"], bypass: [] });
  });
});
