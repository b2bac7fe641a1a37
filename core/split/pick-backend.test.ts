import { describe, expect, it } from "vitest";
import { seededRandom } from "../random.ts";
import { buildSplitTable, pickSticky, pickWeighted } from "./pick-backend.ts";

function counts(names: (string | undefined)[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of names) out[name ?? "none"] = (out[name ?? "none"] ?? 0) + 1;
  return out;
}

/** Bounds for a binomial count at ~5 standard deviations: fails by chance about 1 in 3 million. */
function expectShare(count: number, n: number, p: number): void {
  const sd = Math.sqrt(n * p * (1 - p));
  expect(count).toBeGreaterThanOrEqual(n * p - 5 * sd);
  expect(count).toBeLessThanOrEqual(n * p + 5 * sd);
}

describe("weighted pick", () => {
  it("converges on 90/10 within statistical bounds (fixed seed)", () => {
    const table = buildSplitTable([
      { name: "v1", weight: 90 },
      { name: "v2", weight: 10 },
    ]);
    const random = seededRandom(42);
    const n = 100_000;
    const seen = counts(Array.from({ length: n }, () => pickWeighted(table, random)?.name));
    expectShare(seen.v1 ?? 0, n, 0.9);
    expectShare(seen.v2 ?? 0, n, 0.1);
  });

  it("converges on three-way weights", () => {
    const table = buildSplitTable([
      { name: "a", weight: 1 },
      { name: "b", weight: 2 },
      { name: "c", weight: 7 },
    ]);
    const random = seededRandom(7);
    const n = 50_000;
    const seen = counts(Array.from({ length: n }, () => pickWeighted(table, random)?.name));
    expectShare(seen.a ?? 0, n, 0.1);
    expectShare(seen.b ?? 0, n, 0.2);
    expectShare(seen.c ?? 0, n, 0.7);
  });

  it("never picks weight 0", () => {
    const table = buildSplitTable([
      { name: "off", weight: 0 },
      { name: "on", weight: 1 },
      { name: "off2", weight: 0 },
    ]);
    const random = seededRandom(3);
    for (let i = 0; i < 10_000; i++) expect(pickWeighted(table, random)?.name).toBe("on");
  });

  it("picks nothing when every weight is 0 or there are no items", () => {
    expect(pickWeighted(buildSplitTable([{ name: "a", weight: 0 }]), Math.random)).toBeUndefined();
    expect(pickWeighted(buildSplitTable([]), Math.random)).toBeUndefined();
  });
});

describe("sticky pick (weighted rendezvous hashing)", () => {
  const keys = Array.from({ length: 20_000 }, (_, i) => `user-${i}`);

  it("gives the same backend for the same key", () => {
    const table = buildSplitTable([
      { name: "v1", weight: 50 },
      { name: "v2", weight: 50 },
    ]);
    for (const key of keys.slice(0, 500)) {
      expect(pickSticky(table, key)?.name).toBe(pickSticky(table, key)?.name);
    }
  });

  it("spreads keys by weight", () => {
    const table = buildSplitTable([
      { name: "v1", weight: 80 },
      { name: "v2", weight: 20 },
    ]);
    const seen = counts(keys.map((key) => pickSticky(table, key)?.name));
    expectShare(seen.v1 ?? 0, keys.length, 0.8);
    expectShare(seen.v2 ?? 0, keys.length, 0.2);
  });

  it("keeps users on the growing version while the canary ramps up", () => {
    const ramp = [1, 5, 10, 25, 50, 75, 100].map((canary) =>
      buildSplitTable([
        { name: "stable", weight: 100 - canary },
        { name: "canary", weight: canary },
      ]),
    );
    let previous = keys.map((key) => pickSticky(ramp[0]!, key)?.name);
    for (const table of ramp.slice(1)) {
      const next = keys.map((key) => pickSticky(table, key)?.name);
      // Nobody who reached the canary is sent back to stable as its weight grows.
      next.forEach((name, i) => {
        if (previous[i] === "canary") expect(name).toBe("canary");
      });
      previous = next;
    }
    expect(previous.every((name) => name === "canary")).toBe(true);
  });

  it("moves only the keys of a backend that is removed", () => {
    const before = buildSplitTable([
      { name: "a", weight: 1 },
      { name: "b", weight: 1 },
      { name: "c", weight: 1 },
    ]);
    const after = buildSplitTable([
      { name: "a", weight: 1 },
      { name: "b", weight: 0 },
      { name: "c", weight: 1 },
    ]);
    for (const key of keys.slice(0, 3000)) {
      const was = pickSticky(before, key)?.name;
      if (was !== "b") expect(pickSticky(after, key)?.name).toBe(was);
    }
  });
});
