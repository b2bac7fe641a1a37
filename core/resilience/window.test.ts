import { describe, expect, it } from "vitest";
import { SlidingCounter } from "./window.ts";

describe("sliding counter", () => {
  it("counts over the window and forgets, step by step, what slid out of it", () => {
    const counter = new SlidingCounter(1000, 0); // ten steps of 100 ms
    counter.add(3, 0);
    counter.add(2, 450);
    expect(counter.total(999)).toBe(5);
    expect(counter.total(1000)).toBe(2); // the first step left the window
    expect(counter.total(1450)).toBe(0);
  });

  it("starts afresh after a silence longer than the window", () => {
    const counter = new SlidingCounter(1000, 0);
    counter.add(7, 50);
    counter.add(1, 60_000);
    expect(counter.total(60_000)).toBe(1);
  });
});
