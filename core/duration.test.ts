import { describe, expect, it } from "vitest";
import { isDuration, parseDuration } from "./duration.ts";

describe("Gateway API durations", () => {
  it("parses single and compound durations", () => {
    expect(parseDuration("500ms")).toBe(500);
    expect(parseDuration("10s")).toBe(10_000);
    expect(parseDuration("1m30s")).toBe(90_000);
    expect(parseDuration("1h2m3s4ms")).toBe(3_723_004);
    expect(parseDuration("0s")).toBe(0);
  });

  it("rejects what the spec's pattern rejects", () => {
    for (const bad of ["", "10", "1.5s", "-1s", "10 s", "1d", "1h1h1h1h1h", "123456s"]) {
      expect(isDuration(bad), bad).toBe(false);
      expect(() => parseDuration(bad)).toThrow(/not a duration/);
    }
  });
});
