import { describe, expect, it } from "vitest";
import { compileRegex, MAX_REGEX_LENGTH, MAX_REGEX_SUBJECT_LENGTH, regexProblem } from "./regex.ts";

describe("route regular expressions (RE2)", () => {
  it("matches the whole value, as Gateway API RegularExpression matches do", () => {
    const test = compileRegex("/items/[0-9]+");
    expect(test("/items/42")).toBe(true);
    expect(test("/items/42/x")).toBe(false);
    expect(test("x/items/42")).toBe(false);
  });

  it("runs the catastrophic (a+)+$ on 30 and 4096 characters in milliseconds, not seconds", () => {
    const test = compileRegex("(a+)+$");
    // The attack from the report: with a backtracking engine each extra 'a' doubles the time.
    for (const length of [30, MAX_REGEX_SUBJECT_LENGTH - 1]) {
      const started = performance.now();
      expect(test(`${"a".repeat(length)}!`)).toBe(false);
      // A generous bound: a backtracking engine needs seconds at 30 characters and would not
      // finish at 4096; RE2 takes well under a millisecond on a quiet machine.
      expect(performance.now() - started).toBeLessThan(2000);
    }
  });

  it("never matches a value longer than the subject limit", () => {
    const test = compileRegex("a*");
    expect(test("a".repeat(MAX_REGEX_SUBJECT_LENGTH))).toBe(true);
    expect(test("a".repeat(MAX_REGEX_SUBJECT_LENGTH + 1))).toBe(false);
  });

  it("refuses what RE2 cannot run in linear time, naming the construct", () => {
    expect(regexProblem("(a)\\1")).toMatch(/not a valid RE2 regular expression.*\\1/);
    expect(regexProblem("(?=a)b")).toMatch(/not a valid RE2 regular expression/);
    expect(regexProblem("/(")).toMatch(/not a valid RE2 regular expression/);
  });

  it("refuses patterns that are too long or compile to too large a program", () => {
    expect(regexProblem("a".repeat(MAX_REGEX_LENGTH + 1))).toMatch(/limit is 1024/);
    expect(regexProblem("(?:a?){200}a{200}")).toMatch(/program of size \d+; the limit is 256/);
    expect(regexProblem("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")).toBe(
      undefined,
    );
  });
});
