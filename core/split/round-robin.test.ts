import { describe, expect, it } from "vitest";
import { SmoothRoundRobin } from "./round-robin.ts";

const items = (...weights: number[]) => weights.map((weight, i) => ({ name: `e${i}`, weight }));

describe("smooth weighted round robin", () => {
  it("takes equal weights in turn", () => {
    const rr = new SmoothRoundRobin();
    const list = items(1, 1, 1);
    expect(Array.from({ length: 6 }, () => rr.pick(list))).toEqual([0, 1, 2, 0, 1, 2]);
  });

  it("interleaves by weight: 5:1:1 is a a b a c a a", () => {
    const rr = new SmoothRoundRobin();
    const list = items(5, 1, 1);
    expect(Array.from({ length: 7 }, () => rr.pick(list))).toEqual([0, 0, 1, 0, 2, 0, 0]);
  });

  it("gives each its share over any run, and skips weight 0 and refused items", () => {
    const rr = new SmoothRoundRobin();
    const list = items(3, 0, 2);
    const counts = [0, 0, 0];
    for (let i = 0; i < 500; i++) counts[rr.pick(list)]! += 1;
    expect(counts).toEqual([300, 0, 200]);
    expect(rr.pick(list, (i) => i !== 0)).toBe(2);
    expect(rr.pick(items(0, 0))).toBe(-1);
  });
});
